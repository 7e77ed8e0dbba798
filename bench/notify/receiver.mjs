/**
 * The webhook receiver of bench/notify/watch.ts in a process of its own: the bench process also
 * runs the sandbox (50,000 synthetic mailboxes, their subscriptions and streams), whose garbage
 * collections and bursts held its event loop for up to a second, and a webhook that waited for
 * that loop was timed late. Here it is timed the moment its body has arrived, on the machine's
 * monotonic clock (process.hrtime, CLOCK_MONOTONIC: the same in every process), which is what the
 * bench process reads when a message arrives.
 *
 * Prints `LISTEN <port>`, then one line per message.new event: `E <ns> <json { id, subject }>`.
 * Stops on SIGTERM.
 */
import { createServer } from 'node:http';

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const at = process.hrtime.bigint();
    res.writeHead(204).end();
    const msg = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (msg.type === 'message.new') process.stdout.write(`E ${at} ${JSON.stringify({ id: msg.data.id, subject: msg.data.subject })}\n`);
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`LISTEN ${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
