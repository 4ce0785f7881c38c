// duration.js: a number of seconds as people read it, the same words as the CLI's
// lua/fastbrain/duration.lua: "45 s", "1 min 20 s", "2 h 5 min"; an em dash when it is not a
// number.
export function duration(s) {
  if (typeof s !== 'number' || !Number.isFinite(s) || s < 0) return '\u2014';
  const n = Math.round(s);
  if (n < 60) return `${n} s`;
  if (n < 3600) return n % 60 ? `${Math.floor(n / 60)} min ${n % 60} s` : `${n / 60} min`;
  const min = Math.floor((n % 3600) / 60);
  return min ? `${Math.floor(n / 3600)} h ${min} min` : `${Math.floor(n / 3600)} h`;
}
