// Preloaded (node --import) into MCP peers that the tests start but do not own, such as
// server-everything, whose CLI takes a port (PORT) but no address and would otherwise listen on
// every interface. Two effects, both for the harness:
//   - a listen() without a host binds 127.0.0.1, so nothing a test starts is reachable from
//     outside the machine;
//   - once a server listens, one line `e2e-peer: listening on 127.0.0.1:<port>` goes to stderr,
//     so PORT=0 works: the harness learns the real port from that line (the same contract the
//     gateway follows) instead of reserving a port and racing other processes for it.
import net from 'node:net';

const loopback = '127.0.0.1';
const original_listen = net.Server.prototype.listen;

// Returns listen()'s arguments with the loopback host added where the caller gave none. Pipe
// paths, handles and calls that already name a host pass through unchanged.
function with_loopback_host(args) {
  const [first, second] = args;
  if (first !== null && typeof first === 'object') {
    const is_tcp =
        'port' in first && !('path' in first) && !('handle' in first) && !('fd' in first);
    return is_tcp && first.host === undefined ? [{...first, host: loopback}, ...args.slice(1)] :
                                                args;
  }
  const is_port = typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first));
  if (!is_port && first !== undefined && typeof first !== 'function') return args;
  if (first === undefined || typeof first === 'function') return [0, loopback, ...args];
  if (typeof second === 'string') return args;
  return [first, loopback, ...args.slice(1)];
}

net.Server.prototype.listen = function listen_on_loopback(...args) {
  this.once('listening', () => {
    const address = this.address();
    if (address && typeof address === 'object') {
      process.stderr.write(`e2e-peer: listening on ${address.address}:${address.port}\n`);
    }
  });
  return original_listen.apply(this, with_loopback_host(args));
};
