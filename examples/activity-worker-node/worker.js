// A jetflow activity worker in Node.js, written from docs/wire.md alone: it serves
// CheckAndReserveInventory of the PlaceOrder example (activities/activities.go), taking the
// order's items out of the stock in KV bucket jetflow-inventory. Run: NATS_URL=... node worker.js
import { AckPolicy, connect, nanos } from "nats";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const PREFIX = process.env.JETFLOW_PREFIX ?? "jetflow";
const ACTIVITY = "CheckAndReserveInventory";
const DEFAULT_START_TO_CLOSE_MS = 10 * 60 * 1000; // the Go worker's default (wire.md, section 7)
const ACK_WAIT_MS = 30_000;

// encodeToken turns a name into a subject token (wire.md, section 1).
function encodeToken(name) {
  let out = "";
  for (const b of new TextEncoder().encode(name)) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9_-]/.test(c) ? c : "=" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

const nc = await connect({ servers: NATS_URL, name: "jetflow node activity worker" });
const js = nc.jetstream();
const jsm = await nc.jetstreamManager();
const kv = await js.views.kv("jetflow-inventory", { bindOnly: true });
const stream = PREFIX.toUpperCase() + "_ACT";
const durable = "activity-" + encodeToken(ACTIVITY);
await jsm.consumers.info(stream, durable).catch(() =>
  jsm.consumers.add(stream, {
    durable_name: durable, filter_subject: `${PREFIX}.activity.${encodeToken(ACTIVITY)}`,
    ack_policy: AckPolicy.Explicit, ack_wait: nanos(ACK_WAIT_MS), max_deliver: -1, max_ack_pending: 20000,
  }));

// Cancels of the activities of ended instances (wire.md, section 7): abort what they cover.
const running = new Map(); // AbortController -> task
nc.subscribe(`${PREFIX}.cancel.>`, {
  callback: (err, msg) => {
    if (err) return;
    try {
      const c = JSON.parse(new TextDecoder().decode(msg.data));
      for (const [ctl, t] of running) {
        if (t.instanceId === c.instanceId && t.generation <= c.generation) ctl.abort(new Error("ActivityCanceled"));
      }
    } catch { /* not a cancel: ignored */ }
  },
});

// reserve takes order.quantity items of order.item out of the stock with a compare-and-set.
async function reserve(order, signal) {
  for (;;) {
    signal.throwIfAborted();
    const e = await kv.get(order.item);
    const stock = e && e.operation === "PUT" ? Number(e.string().trim()) : 0;
    if (stock < order.quantity) return false;
    const next = new TextEncoder().encode(String(stock - order.quantity));
    try {
      await (e ? kv.update(order.item, next, e.revision) : kv.create(order.item, next));
      return true;
    } catch { /* another writer came first: read again */ }
  }
}

async function handle(m) {
  let task;
  try {
    task = JSON.parse(new TextDecoder().decode(m.data));
    if (!task.instanceId || !(task.taskId >= 1)) throw new Error("no instanceId or taskId");
  } catch (err) {
    console.error(`unusable task: ${err.message}`);
    m.term(); // Go workers dead-letter it; this example only drops it
    return;
  }
  const started = Date.now();
  let deadline = started + (task.startToCloseMs || DEFAULT_START_TO_CLOSE_MS);
  let type = "StartToCloseTimeout";
  if (task.scheduleToCloseDeadline && Date.parse(task.scheduleToCloseDeadline) < deadline) {
    deadline = Date.parse(task.scheduleToCloseDeadline);
    type = "ScheduleToCloseTimeout";
  }
  const ctl = new AbortController();
  running.set(ctl, task);
  const timer = setTimeout(() => ctl.abort(new Error(type)), Math.max(0, deadline - started));
  const working = setInterval(() => m.working(), ACK_WAIT_MS / 3); // until the deadline, no longer
  const result = { generation: task.generation, taskId: task.taskId };
  if (task.rewind) result.rewind = task.rewind;
  try {
    const order = task.input ?? {};
    if (!order.item || !(order.quantity > 0)) throw new Error("order needs an item and a quantity > 0");
    const stopped = new Promise((_, reject) => ctl.signal.addEventListener("abort", () => reject(ctl.signal.reason)));
    result.result = await Promise.race([reserve(order, ctl.signal), stopped]); // answer at once when stopped
    console.log(`node served ${ACTIVITY} for ${task.instanceId} task ${task.taskId}: reserved=${result.result}`);
  } catch (err) {
    const reason = ctl.signal.aborted ? ctl.signal.reason.message : "Error";
    result.failure = { type: reason, message: `${ACTIVITY}: ${err.message}` };
  } finally {
    clearTimeout(timer);
    clearInterval(working);
    running.delete(ctl);
  }
  const idTok = encodeToken(task.instanceId);
  const msgID = `result:${idTok}:${task.generation}:${task.taskId}` + (task.rewind ? `:r${task.rewind}` : "");
  try {
    await js.publish(`${PREFIX}.inst.${idTok}.result`, JSON.stringify(result), { msgID });
    m.ack(); // only once the result is stored
  } catch (err) {
    console.error(`result not published, the task comes back: ${err.message}`);
    m.nak(1000);
  }
}

const messages = await (await js.consumers.get(stream, durable)).consume({ max_messages: 16 });
console.log(`node worker ready: serving ${ACTIVITY} on ${NATS_URL}`);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => nc.drain());
for await (const m of messages) handle(m).catch((err) => console.error(err));
