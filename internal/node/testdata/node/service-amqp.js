// A CloudEvents service on RabbitMQ, written with amqplib the way the
// CloudEvents AMQP binding names the attributes (cloudEvents:* headers).
// Usage: node service-amqp.js AMQP_URL QUEUE. It prints "ready" once it
// consumes, and answers each event with an event whose body is the
// request's prefixed "cloudevents-amqp:", to the cloudEvents:replyto
// queue, carrying cloudEvents:correlationid back.
const amqp = require('amqplib');
const [url, queue] = process.argv.slice(2);

(async () => {
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  await ch.assertQueue(queue, { durable: false, autoDelete: true });
  await ch.consume(queue, (msg) => {
    const h = msg.properties.headers || {};
    const to = h['cloudEvents:replyto'];
    if (to && String(h['cloudEvents:specversion']) === '1.0') {
      ch.sendToQueue(String(to), Buffer.from('cloudevents-amqp:' + msg.content.toString()), {
        contentType: 'text/plain',
        headers: {
          'cloudEvents:specversion': '1.0', 'cloudEvents:id': 'reply-' + h['cloudEvents:id'],
          'cloudEvents:source': '/foreign/amqp', 'cloudEvents:type': 'com.example.reply',
          'cloudEvents:correlationid': String(h['cloudEvents:correlationid']), 'cloudEvents:httpstatus': '202',
        },
      });
    }
    ch.ack(msg);
  });
  console.log('ready');
  process.on('SIGINT', async () => { await conn.close(); process.exit(0); });
  process.on('SIGTERM', async () => { await conn.close(); process.exit(0); });
})().catch((e) => { console.error(e); process.exit(1); });
