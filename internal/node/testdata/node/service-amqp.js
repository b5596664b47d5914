// Services on RabbitMQ written with amqplib the way two ecosystems write
// them. Usage: node service-amqp.js PROFILE AMQP_URL QUEUE; it prints
// "ready" once it consumes.
//   cloudevents: the CloudEvents AMQP binding's names (cloudEvents:*
//     headers): answers with an event whose body is the request's prefixed
//     "cloudevents-amqp:", to cloudEvents:replyto, carrying
//     cloudEvents:correlationid back, status 202 in cloudEvents:httpstatus.
//   spring: a Spring AMQP @RabbitListener with a return value: replies to
//     the reply_to property with the correlation_id property copied,
//     body prefixed "spring-amqp:", nothing else.
const amqp = require('amqplib');
const [profile, url, queue] = process.argv.slice(2);

(async () => {
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  await ch.assertQueue(queue, { durable: false, autoDelete: true });
  await ch.consume(queue, (msg) => {
    const h = msg.properties.headers || {};
    if (profile === 'spring' && msg.properties.replyTo) {
      ch.sendToQueue(msg.properties.replyTo, Buffer.from('spring-amqp:' + msg.content.toString()),
        { correlationId: msg.properties.correlationId });
    }
    const to = h['cloudEvents:replyto'];
    if (profile === 'cloudevents' && to && String(h['cloudEvents:specversion']) === '1.0') {
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
