/**
 * A fake of the GitHub Actions service's runner scale set protocol (what the controller speaks),
 * in front of the fake GitHub REST API: `POST /actions/runner-registration`, the Actions service
 * (`/tenant/_apis/...`) and the message queue (`/_queue/...`) are served here; every other request
 * is passed through to the fake GitHub unchanged. Point GITHUB_URL and GITHUB_API_URL at `url`.
 *
 * Shapes follow the notes in /work/shared/notes/github-api.md and the official Go client
 * (github.com/actions/scaleset). Long polls end after `pollMs` with 202, so nothing outlives stop().
 */
import { randomBytes, randomUUID } from "node:crypto"
import type { FakeGitHub } from "./fake-github.ts"

export interface FakeActionsOptions {
  readonly github: FakeGitHub
  readonly runnerGroups?: ReadonlyArray<{ id: number; name: string }>
  /** How long a message poll waits before answering 202 (the real service: ~50 s). Default 500 ms. */
  readonly pollMs?: number
  /** Admin token lifetime in seconds (default 3600). */
  readonly adminTtlSeconds?: number
  /** Prefix every JSON body with a UTF-8 byte order mark, as the real service sometimes does. */
  readonly bom?: boolean
}

export interface ActionsCall {
  readonly method: string
  readonly path: string
  readonly query: Record<string, string>
  readonly status: number
  readonly body: unknown
  /** Only the protocol headers the tests check (never an Authorization value). */
  readonly maxCapacity: string | null
  readonly authScheme: string | null
}

export interface FakeScaleSet {
  id: number
  name: string
  runnerGroupId: number
  labels: Array<{ name: string; type: string }>
}

export interface FakeScaleSetRunner {
  id: number
  name: string
  scaleSetId: number
  busy: boolean
  encodedJitConfig: string
}

export interface FakeActions {
  readonly url: string
  readonly calls: ActionsCall[]
  readonly scaleSets: Map<number, FakeScaleSet>
  readonly runners: Map<number, FakeScaleSetRunner>
  /** Open sessions by scale set id. */
  readonly sessions: Map<number, { sessionId: string; queueToken: string }>
  /** Admin tokens handed out (for redaction checks). */
  issuedSecrets(): string[]
  /** Queues a RunnerScaleSetJobMessages message for a scale set; returns its id. */
  pushJobMessage(scaleSetId: number, items: ReadonlyArray<Record<string, unknown>>, statistics: Record<string, number>): number
  /** Messages not yet acknowledged. */
  pendingMessages(scaleSetId: number): number[]
  /** The next `times` requests matching "METHOD /path-regex" answer this instead. */
  failNext(method: string, path: RegExp, response: { status: number; body?: unknown }, times?: number): void
  /** Every admin token becomes invalid (next use → 401). */
  revokeAdminTokens(): void
  /** Every queue token becomes invalid (next use → 401). */
  revokeQueueTokens(): void
  stop(): Promise<void>
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

const fakeJwt = (expSeconds: number): string => {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url")
  return `${b64({ alg: "RS256", typ: "JWT" })}.${b64({ exp: expSeconds, sub: "fake-actions", nonce: randomBytes(8).toString("hex") })}.${randomBytes(24).toString("base64url")}`
}

export const startFakeActions = async (options: FakeActionsOptions): Promise<FakeActions> => {
  const github = options.github
  const pollMs = options.pollMs ?? 500
  const groups = options.runnerGroups ?? [{ id: 1, name: "Default" }, { id: 7, name: "linux-docker" }]
  const calls: ActionsCall[] = []
  const scaleSets = new Map<number, FakeScaleSet>()
  const runners = new Map<number, FakeScaleSetRunner>()
  const sessions = new Map<number, { sessionId: string; queueToken: string }>()
  const messages = new Map<number, Array<{ messageId: number; messageType: string; body: string; statistics: Record<string, number> }>>()
  const adminTokens = new Set<string>()
  const issued: string[] = []
  const queueTokens = new Set<string>()
  const faults: Array<{ method: string; path: RegExp; response: { status: number; body?: unknown }; times: number }> = []
  let nextId = 1
  let nextMessageId = 1
  let stopped = false

  const json = (status: number, body?: unknown): Response => {
    if (body === undefined) return new Response(null, { status })
    const text = JSON.stringify(body)
    return new Response(options.bom === true ? `\uFEFF${text}` : text, { status, headers: { "content-type": "application/json; charset=utf-8" } })
  }
  const exception = (status: number, typeName: string, message: string) =>
    json(status, { $id: "1", innerException: null, message, typeName: `GitHub.DistributedTask.WebApi.${typeName}, Sdk`, typeKey: typeName, errorCode: 0 })

  const bearer = (req: Request): string | undefined => /^Bearer (.+)$/.exec(req.headers.get("authorization") ?? "")?.[1]

  const handle = async (req: Request, url: URL, body: unknown): Promise<Response> => {
    const path = url.pathname
    const method = req.method

    // --- registration (RemoteAuth with a registration token from the fake GitHub) -------------
    if (method === "POST" && path === "/actions/runner-registration") {
      const token = /^RemoteAuth (.+)$/.exec(req.headers.get("authorization") ?? "")?.[1]
      if (token === undefined || !github.issuedSecrets().includes(token)) return json(401, { message: "Bad credentials" })
      const b = body as { url?: string; runner_event?: string } | undefined
      if (typeof b?.url !== "string" || b.runner_event !== "register") return json(400, { message: "invalid body" })
      const admin = fakeJwt(Math.floor(Date.now() / 1000) + (options.adminTtlSeconds ?? 3600))
      adminTokens.add(admin)
      issued.push(admin)
      return json(200, { url: `${url.origin}/tenant/`, token: admin, token_schema: "OAuthAccessToken" })
    }

    // --- message queue (queue token) -------------------------------------------------------------
    const queue = /^\/_queue\/(\d+)\/messages(?:\/(\d+))?$/.exec(path)
    if (queue !== null) {
      const scaleSetId = Number(queue[1])
      const token = bearer(req)
      if (token === undefined || !queueTokens.has(token) || sessions.get(scaleSetId)?.queueToken !== token) {
        return exception(401, "UnauthorizedException", "queue token is not valid")
      }
      const list = messages.get(scaleSetId) ?? []
      if (method === "DELETE" && queue[2] !== undefined) {
        const id = Number(queue[2])
        const index = list.findIndex((m) => m.messageId === id)
        if (index >= 0) list.splice(index, 1)
        return json(204)
      }
      if (method === "GET") {
        const last = Number(url.searchParams.get("lastMessageId") ?? "0")
        const deadline = Date.now() + pollMs
        while (!stopped && !req.signal.aborted) {
          const found = list.find((m) => m.messageId > last)
          if (found !== undefined) return json(200, found)
          if (Date.now() >= deadline) break
          await sleep(20)
        }
        return json(202)
      }
      return json(405)
    }

    // --- Actions service (admin token; acquirejobs takes the queue token) -------------------------
    if (!path.startsWith("/tenant/_apis/")) return json(404, { message: "Not Found" })
    if (url.searchParams.get("api-version") !== "6.0-preview") return exception(400, "VssInvalidApiVersionException", "api-version is required")
    const api = path.slice("/tenant/_apis/".length)
    const token = bearer(req)

    const acquire = /^runtime\/runnerscalesets\/(\d+)\/acquirejobs$/.exec(api)
    if (acquire !== null && method === "POST") {
      if (token === undefined || !queueTokens.has(token)) return exception(401, "UnauthorizedException", "queue token is not valid")
      const ids = Array.isArray(body) ? (body as number[]) : []
      return json(200, { count: ids.length, value: ids })
    }
    if (token === undefined || !adminTokens.has(token)) return exception(401, "UnauthorizedException", "admin token is not valid")

    if (method === "GET" && api === "runtime/runnergroups/") {
      const name = url.searchParams.get("groupName") ?? ""
      const value = groups.filter((g) => g.name.toLowerCase() === name.toLowerCase()).map((g) => ({ ...g, isDefaultGroup: g.id === 1 }))
      return json(200, { count: value.length, value })
    }
    if (api === "runtime/runnerscalesets") {
      if (method === "GET") {
        const groupId = Number(url.searchParams.get("runnerGroupId"))
        const name = url.searchParams.get("name")
        const value = [...scaleSets.values()].filter((s) => s.runnerGroupId === groupId && s.name === name)
        return json(200, { count: value.length, value })
      }
      if (method === "POST") {
        const b = body as { name?: string; runnerGroupId?: number; labels?: Array<{ name: string; type: string }> }
        if (typeof b?.name !== "string" || typeof b.runnerGroupId !== "number") return exception(400, "ArgumentException", "name and runnerGroupId are required")
        if (!groups.some((g) => g.id === b.runnerGroupId)) return exception(404, "RunnerGroupNotFoundException", "runner group not found")
        const set: FakeScaleSet = { id: nextId++, name: b.name, runnerGroupId: b.runnerGroupId, labels: b.labels ?? [] }
        scaleSets.set(set.id, set)
        return json(200, { ...set, runnerSetting: { ephemeral: true, disableUpdate: true } })
      }
    }
    const sessionPath = /^runtime\/runnerscalesets\/(\d+)\/sessions(?:\/([^/]+))?$/.exec(api)
    if (sessionPath !== null) {
      const scaleSetId = Number(sessionPath[1])
      if (!scaleSets.has(scaleSetId)) return exception(404, "RunnerScaleSetNotFoundException", "scale set not found")
      const existing = sessions.get(scaleSetId)
      if (method === "POST" && sessionPath[2] === undefined) {
        if (existing !== undefined) {
          return exception(409, "RunnerScaleSetSessionConflictException", "The actions runner scale set already has an active session")
        }
        const session = { sessionId: randomUUID(), queueToken: fakeJwt(Math.floor(Date.now() / 1000) + 3600) }
        sessions.set(scaleSetId, session)
        queueTokens.add(session.queueToken)
        issued.push(session.queueToken)
        return json(200, {
          sessionId: session.sessionId,
          ownerName: (body as { ownerName?: string } | undefined)?.ownerName,
          runnerScaleSet: scaleSets.get(scaleSetId),
          messageQueueUrl: `${url.origin}/_queue/${scaleSetId}/messages`,
          messageQueueAccessToken: session.queueToken,
          statistics: { totalAvailableJobs: 0, totalAcquiredJobs: 0, totalAssignedJobs: 0, totalRunningJobs: 0, totalRegisteredRunners: 0, totalBusyRunners: 0, totalIdleRunners: 0 }
        })
      }
      if (existing === undefined || existing.sessionId !== sessionPath[2]) return exception(404, "RunnerScaleSetSessionNotFoundException", "session not found")
      if (method === "DELETE") {
        sessions.delete(scaleSetId)
        queueTokens.delete(existing.queueToken)
        return json(204)
      }
      if (method === "PATCH") {
        queueTokens.delete(existing.queueToken)
        existing.queueToken = fakeJwt(Math.floor(Date.now() / 1000) + 3600)
        queueTokens.add(existing.queueToken)
        issued.push(existing.queueToken)
        return json(200, { sessionId: existing.sessionId, messageQueueUrl: `${url.origin}/_queue/${scaleSetId}/messages`, messageQueueAccessToken: existing.queueToken })
      }
    }
    const jit = /^runtime\/runnerscalesets\/(\d+)\/generatejitconfig$/.exec(api)
    if (jit !== null && method === "POST") {
      const scaleSetId = Number(jit[1])
      const b = body as { name?: string; workFolder?: string }
      if (!scaleSets.has(scaleSetId)) return exception(404, "RunnerScaleSetNotFoundException", "scale set not found")
      if (typeof b?.name !== "string") return exception(400, "ArgumentException", "name is required")
      if ([...runners.values()].some((r) => r.name === b.name)) return exception(409, "AgentExistsException", `runner ${b.name} already exists`)
      const id = nextId++
      const encodedJitConfig = Buffer.from(JSON.stringify({ ".runner": randomBytes(24).toString("base64"), ".credentials": randomBytes(24).toString("base64"), name: b.name })).toString("base64")
      runners.set(id, { id, name: b.name, scaleSetId, busy: false, encodedJitConfig })
      issued.push(encodedJitConfig)
      return json(200, { runner: { id, name: b.name, runnerScaleSetId: scaleSetId }, encodedJITConfig: encodedJitConfig })
    }
    const agent = /^distributedtask\/pools\/0\/agents\/(\d+)$/.exec(api)
    if (agent !== null && method === "DELETE") {
      const runner = runners.get(Number(agent[1]))
      if (runner === undefined) return exception(404, "AgentNotFoundException", "runner not found")
      if (runner.busy) return exception(400, "JobStillRunningException", "the runner is running a job")
      runners.delete(runner.id)
      return json(204)
    }
    return exception(404, "NotFoundException", `no route ${method} ${path}`)
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    fetch: async (req) => {
      const url = new URL(req.url)
      const own = url.pathname === "/actions/runner-registration" || url.pathname.startsWith("/tenant/") || url.pathname.startsWith("/_queue/")
      if (!own) {
        // Everything else is the fake GitHub's REST API.
        const headers = new Headers(req.headers)
        headers.delete("host")
        const upstream = await fetch(`${github.url}${url.pathname}${url.search}`, {
          method: req.method,
          headers,
          body: req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer()
        })
        const out = new Headers(upstream.headers)
        out.delete("content-encoding")
        out.delete("content-length")
        return new Response(await upstream.arrayBuffer(), { status: upstream.status, headers: out })
      }
      const text = await req.text()
      let body: unknown
      try {
        body = text === "" ? undefined : JSON.parse(text)
      } catch {
        body = text
      }
      const fault = faults.find((f) => f.method === req.method && f.path.test(url.pathname) && f.times > 0)
      let response: Response
      if (fault !== undefined) {
        fault.times--
        response = json(fault.response.status, fault.response.body)
      } else {
        response = await handle(req, url, body)
      }
      calls.push({
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        status: response.status,
        body,
        maxCapacity: req.headers.get("x-scalesetmaxcapacity"),
        authScheme: (req.headers.get("authorization") ?? "").split(" ")[0] || null
      })
      return response
    }
  })

  return {
    url: `http://127.0.0.1:${server.port}`,
    calls,
    scaleSets,
    runners,
    sessions,
    issuedSecrets: () => [...issued],
    pushJobMessage: (scaleSetId, items, statistics) => {
      const messageId = nextMessageId++
      const list = messages.get(scaleSetId) ?? []
      list.push({ messageId, messageType: "RunnerScaleSetJobMessages", body: JSON.stringify(items), statistics })
      messages.set(scaleSetId, list)
      return messageId
    },
    pendingMessages: (scaleSetId) => (messages.get(scaleSetId) ?? []).map((m) => m.messageId),
    failNext: (method, path, response, times = 1) => void faults.push({ method, path, response, times }),
    revokeAdminTokens: () => adminTokens.clear(),
    revokeQueueTokens: () => queueTokens.clear(),
    stop: async () => {
      stopped = true
      await server.stop(true)
    }
  }
}

/** A job message item as the service sends it. */
export const jobItem = (messageType: string, fields: Record<string, unknown> = {}): Record<string, unknown> => ({
  messageType,
  runnerRequestId: 1001,
  repositoryName: "app",
  ownerName: "acme",
  jobId: "job-1",
  jobDisplayName: "build",
  workflowRunId: 77,
  requestLabels: ["ghr"],
  queueTime: new Date().toISOString(),
  ...fields
})
