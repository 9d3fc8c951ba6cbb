// FNV-1a, 32-bit: a stable hash of a string, the same in every run and process (hashed
// embedding rows, holdout choice, the feature engine's sweep slices).
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
