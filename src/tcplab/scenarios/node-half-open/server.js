// The seed note's Node example (000), server side: allowHalfOpen keeps the
// socket writable after the peer's FIN, so it can still answer "thx".
// Each socket event is printed as one line "event NAME [data]" on stdout; the
// lab stamps each line with the time of its write() (from strace) and puts it on the
// timeline against the packets.
const net = require("net");
const port = Number(process.env.TCPLAB_SERVER_PORT || 8080);
const server = net.createServer({ allowHalfOpen: true }, (c) => {
  c.on("data", (d) => console.log(`event data ${d}`));
  c.on("end", () => {
    console.log("event end");
    c.end("thx");
  });
  c.on("close", () => {
    console.log("event close");
    server.close();
  });
});
server.listen(port, () => console.log("event listening"));
