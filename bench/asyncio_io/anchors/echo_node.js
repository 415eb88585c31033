// TCP echo in node (anchor for echo.lua; node anchors/echo_node.js [NCONN]):
// 64-byte messages over NCONN (1) loopback connections, one at a time per
// connection, for about a second: reports round trips/s.
const net = require("net");
const nconn = Number(process.argv[2] || 1);
const server = net.createServer({noDelay: true}, (s) => s.on("data", (d) => s.write(d)));
server.listen(0, "127.0.0.1", () => {
  const port = server.address().port;
  const msg = Buffer.alloc(64, "x");
  let n = 0, live = nconn, connected = 0, t0 = 0n;
  const clients = [];
  for (let i = 0; i < nconn; i++) {
    const c = net.connect(port, "127.0.0.1", () => {
      c.setNoDelay(true);
      if (++connected === nconn) {
        t0 = process.hrtime.bigint();
        for (const k of clients) k.write(msg);
      }
    });
    clients.push(c);
    let got = 0, stopped = false;
    c.on("data", (d) => {
      got += d.length;
      while (got >= 64 && !stopped) {
        got -= 64;
        n++;
        if (n % 100 === 0 && Number(process.hrtime.bigint() - t0) / 1e9 >= 1) {
          stopped = true;
          c.destroy();
          if (--live === 0) {
            const dt = Number(process.hrtime.bigint() - t0) / 1e9;
            console.log("RESULT echo_64b_" + nconn + "conn " + Math.round(n / dt));
            server.close();
          }
          return;
        }
        c.write(msg);
      }
    });
  }
});
