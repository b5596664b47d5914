// A Node.js service's reply as amqplib users write it: typed header values
// (a number for status), an array for a repeated header. Usage:
//   node reply.js <amqp-url> <reply-queue> <correlation-id>
const amqp = require('amqplib');

async function main() {
  const [url, queue, id] = process.argv.slice(2);
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createConfirmChannel();
    ch.sendToQueue(queue, Buffer.from('created'), {
      correlationId: id,
      contentType: 'text/plain',
      headers: {
        status: 201,
        'http-header-x-count': 3,
        'http-header-x-ratio': 1.5,
        'http-header-x-flag': true,
        'http-header-x-big': 2 ** 40,
        'http-header-set-cookie': ['a=1', 'b=2'],
      },
    });
    await ch.waitForConfirms();
  } finally {
    await conn.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
