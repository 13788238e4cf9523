/** Picks a port the OS considers free right now by binding port 0 on 127.0.0.1, then releasing it. */
import { createServer } from "node:net"

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close((error) => (error ? reject(error) : port > 0 ? resolve(port) : reject(new Error("no port assigned"))))
    })
  })
