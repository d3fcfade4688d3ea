// The seed note's Node example (000), client side: end("hi") writes "hi" and
// sends FIN (a half-close); the client keeps reading and sees "thx".
const net = require("net");
const port = Number(process.env.TCPLAB_SERVER_PORT || 8080);
const host = process.env.TCPLAB_SERVER_ADDR || "127.0.0.1";
const c = net.connect({ port, host, allowHalfOpen: true }, () => {
  console.log("event connect");
  c.end("hi");
});
c.on("data", (d) => console.log(`event data ${d}`));
c.on("end", () => console.log("event end"));
c.on("close", () => console.log("event close"));
