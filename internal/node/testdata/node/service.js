// A request/reply service the way another ecosystem writes it, against
// Kafka with kafkajs. Usage: node service.js PROFILE BROKER TOPIC
//   spring: a Spring Kafka @SendTo listener: replies to the topic in the
//           kafka_replyTopic header, copying kafka_correlationId as bytes.
//   zilla:  a service behind Zilla's http-kafka binding: replies to
//           zilla:reply-to with zilla:correlation-id, status in :status.
//   cloudevents: CloudEvents 1.0 binary mode: ce_* headers; the reply is an
//           event with ce_correlationid, sent to ce_replyto.
// It prints "ready" once its consumer is assigned, and answers every
// request with its body prefixed by the profile's name. A request whose
// query has progress=1 first gets a progress message, "<profile>:half":
// the reply's headers plus progress: true (ce_type syncgate.progress for
// CloudEvents), keyed like the reply by the correlation id so that it
// comes first.
const { Kafka, logLevel } = require('kafkajs');
const [profile, broker, topic] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'foreign-' + profile, brokers: [broker], logLevel: logLevel.NOTHING });
const consumer = kafka.consumer({ groupId: 'foreign-' + profile + '-' + topic, maxWaitTimeInMs: 50 });
const producer = kafka.producer();

function reply(headers, value) {
  switch (profile) {
    case 'spring': {
      const to = headers['kafka_replyTopic'];
      if (!to) return null;
      // Spring copies the correlation header's bytes unchanged.
      return { topic: to.toString(), messages: [{ value, headers: { kafka_correlationId: headers['kafka_correlationId'] } }] };
    }
    case 'zilla': {
      const to = headers['zilla:reply-to'];
      if (!to) return null;
      return { topic: to.toString(), messages: [{ value, headers: {
        'zilla:correlation-id': headers['zilla:correlation-id'], ':status': '201', 'content-type': 'text/plain' } }] };
    }
    case 'cloudevents': {
      const to = headers['ce_replyto'];
      if (!to || String(headers['ce_specversion']) !== '1.0') return null;
      return { topic: to.toString(), messages: [{ value, headers: {
        ce_specversion: '1.0', ce_id: 'reply-' + headers['ce_id'], ce_source: '/foreign/cloudevents',
        ce_type: 'com.example.reply', ce_correlationid: headers['ce_correlationid'], 'content-type': 'text/plain' } }] };
    }
  }
  throw new Error('unknown profile ' + profile);
}

// progress turns a reply into a progress message of the profile.
function progress(out, value) {
  const m = out.messages[0];
  const headers = { ...m.headers };
  if (profile === 'cloudevents') {
    headers.ce_type = 'syncgate.progress';
    headers.ce_id = 'progress-' + headers.ce_id;
  } else {
    headers.progress = 'true';
  }
  return { topic: out.topic, messages: [{ key: m.key, value, headers }] };
}

function correlation(headers) {
  return headers['kafka_correlationId'] || headers['zilla:correlation-id'] || headers['ce_correlationid'];
}

(async () => {
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  consumer.on(consumer.events.GROUP_JOIN, () => console.log('ready'));
  await consumer.run({
    eachMessage: async ({ message }) => {
      const headers = message.headers || {};
      const out = reply(headers, profile + ':' + (message.value || '').toString());
      if (!out) return;
      out.messages[0].key = correlation(headers);
      if (String(headers['http-query'] || '').split('&').includes('progress=1')) {
        await producer.send(progress(out, profile + ':half'));
      }
      await producer.send(out);
    },
  });
})().catch((e) => { console.error(e); process.exit(1); });
process.on('SIGTERM', async () => { await consumer.disconnect(); await producer.disconnect(); process.exit(0); });
