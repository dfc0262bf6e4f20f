// Calling predict from a Node backend (Node 18+, no dependencies: global fetch).
//
//   node clients/js/predict-example.mjs http://127.0.0.1:8080      # make serve
//   node clients/js/predict-example.mjs https://predict-abc-ew.a.run.app
//
// An https URL gets a Google-signed ID token for that URL from the metadata server (the
// attached service account on Cloud Run, GKE, Compute Engine), cached until 5 minutes before
// it expires; outside Google Cloud, pass one in PREDICT_ID_TOKEN (e.g. minted through
// Workload Identity Federation with google-auth-library's getIdTokenClient). 429 and 503 are
// retried, waiting Retry-After; other 4xx are thrown with the service's code and field.
// Prints one JSON line: the predict and next-items answers for a sample student.

const url = (process.argv[2] || "http://127.0.0.1:8080").replace(/\/+$/, "");
const audience = new URL(url).origin;
let cached = { token: null, exp: 0 };

async function idToken() {
  if (!url.startsWith("https://")) return null; // the local server checks no token
  if (process.env.PREDICT_ID_TOKEN) return process.env.PREDICT_ID_TOKEN;
  if (cached.token && Date.now() / 1000 < cached.exp - 300) return cached.token;
  const meta = "http://metadata.google.internal/computeMetadata/v1/instance/" +
    `service-accounts/default/identity?audience=${encodeURIComponent(audience)}&format=full`;
  const resp = await fetch(meta, { headers: { "Metadata-Flavor": "Google" } });
  if (!resp.ok) throw new Error(`metadata server: ${resp.status}`);
  const token = await resp.text();
  const claims = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
  cached = { token, exp: claims.exp };
  return token;
}

class PredictError extends Error {
  constructor(status, error, requestId) {
    super(`${status} ${error.code}: ${error.message}`);
    Object.assign(this, { status, code: error.code, field: error.field ?? null, requestId });
  }
}

async function call(path, body, { retries = 4, requestId = crypto.randomUUID() } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { "X-Request-Id": requestId };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = await idToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    let resp;
    try {
      resp = await fetch(url + path, {
        method: body === undefined ? "GET" : "POST", headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) { // no answer: retry with backoff
      if (attempt >= retries) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 500 * 2 ** attempt));
      continue;
    }
    if (resp.ok) return resp.json();
    if ((resp.status === 429 || resp.status === 503) && attempt < retries) {
      const wait = Number(resp.headers.get("Retry-After")) || 0.5 * 2 ** attempt;
      await new Promise((r) => setTimeout(r, Math.min(wait, 30) * 1000));
      continue;
    }
    let error = { code: `http_${resp.status}`, message: await resp.text() };
    try { error = JSON.parse(error.message).error; } catch { /* Google's HTML 401/403 */ }
    throw new PredictError(resp.status, error, requestId);
  }
}

// LMS ids may be numbers: 1042 is the item the training query wrote as "1042".
const responses = [
  { item_id: "q0", correct: true }, { item_id: "q1", correct: false },
  { item_id: "q2", correct: true, answered_at: "2026-11-28T10:00:00Z" },
];
const predicted = await call("/predict", { responses, items: ["q3", "q4"] },
  { requestId: "node-example-1" });
const next = await call("/next-items", { responses, k: 2 });
let refused = null;
try {
  await call("/predict", { responses: [{ item_id: "q0", correct: "yes" }] });
} catch (err) {
  if (!(err instanceof PredictError)) throw err;
  refused = { status: err.status, code: err.code, field: err.field };
}
console.log(JSON.stringify({ predicted, next, refused }));
