// Numbers, times and money as a person reads them.

export function parseTime(iso) {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms;
}

export function absolute(iso) {
  const ms = parseTime(iso);
  if (ms === null) return "";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function relative(iso, now = Date.now()) {
  const ms = parseTime(iso);
  if (ms === null) return "";
  const seconds = Math.round((now - ms) / 1000);
  const future = seconds < 0;
  const s = Math.abs(seconds);
  let text;
  if (s < 10) return future ? "in a moment" : "just now";
  if (s < 60) text = `${s} s`;
  else if (s < 3600) text = `${Math.floor(s / 60)} min`;
  else if (s < 86400) text = `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  else text = `${Math.floor(s / 86400)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

/** "12:34" / "1:02:03" until ``iso``, or null once it has passed. */
export function countdown(iso, now = Date.now()) {
  const ms = parseTime(iso);
  if (ms === null) return null;
  const left = Math.floor((ms - now) / 1000);
  if (left < 0) return null;
  const pad = (n) => String(n).padStart(2, "0");
  const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

export function money(value) {
  const n = Number(value || 0);
  if (n === 0) return "$0.00";
  if (n < 0.01) return `$${n.toFixed(4)}`;
  return `$${n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

export function count(value) {
  const n = Number(value || 0);
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return n.toLocaleString("en-US");
}

export function bytes(value) {
  const n = Number(value || 0);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function percent(value) {
  return `${Math.round(Number(value || 0))}%`;
}

export function shortId(value) {
  const text = String(value || "");
  const cut = text.indexOf("_");
  return cut > 0 && text.length > cut + 8 ? `${text.slice(0, cut + 1)}…${text.slice(-6)}` : text;
}

export const words = (value) => String(value ?? "").replaceAll("_", " ");
