// TCP echo in node (anchor for echo.lua; run by hand: node anchors/echo_node.js):
// 64-byte messages over one loopback connection, one at a time, for about
// a second: reports round trips/s.
const net = require("net");
const server = net.createServer((s) => s.on("data", (d) => s.write(d)));
server.listen(0, "127.0.0.1", () => {
  const port = server.address().port;
  const c = net.connect(port, "127.0.0.1", () => {
    const msg = Buffer.alloc(64, "x");
    let n = 0, got = 0;
    const t0 = process.hrtime.bigint();
    c.on("data", (d) => {
      got += d.length;
      while (got >= 64) {
        got -= 64;
        n++;
        if (n % 1000 === 0 && Number(process.hrtime.bigint() - t0) / 1e9 >= 1) {
          const dt = Number(process.hrtime.bigint() - t0) / 1e9;
          console.log("RESULT echo_64b_1conn " + Math.round(n / dt));
          c.destroy();
          server.close();
          return;
        }
        c.write(msg);
      }
    });
    c.write(msg);
  });
});
