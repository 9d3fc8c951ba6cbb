// A simple baseline for eval:rank: logistic matrix factorisation on the same logged samples,
// without real-time features or GraphSAGE. logit = b + a·log1p(position) + b_user + b_side +
// U[user] · (E[item] + E[category] + E[creator] + mean E[tags]), where b_side sums the same
// rows' biases. Plain SGD with L2, samples shuffled each epoch, early stopping on validation
// log-loss (patience 1, the best epoch's predictions kept). What the rankers' extra inputs buy
// over the interactions alone.
import type { LabelledSample } from '../src/events/schemas.js';
import { Rng } from '../src/util/rng.js';

export interface FactorisationOptions {
  dim?: number;
  learningRate?: number;
  l2?: number;
  maxEpochs?: number;
  seed?: number;
  onEpoch?: (epoch: number, validationLoss: number) => void;
}

interface Row {
  user: number;
  side: number[];
  weight: number[];
  logPosition: number;
  clicked: number;
}

const ids = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

/** Trains on `train` (the newest 10 % validate) and returns click scores for `test`. */
export function factorisationScores(
  train: readonly LabelledSample[],
  test: readonly LabelledSample[],
  opts: FactorisationOptions = {},
): Float64Array {
  const dim = opts.dim ?? 16;
  const lr = opts.learningRate ?? 0.05;
  const l2 = opts.l2 ?? 0.0005;
  const rng = new Rng(opts.seed ?? 1);
  // Row r of `vectors` holds dim factors and a bias, at r × (dim + 1).
  const index = new Map<string, number>();
  let vectors = new Float64Array(1024 * (dim + 1));
  const rowOf = (key: string): number => {
    let r = index.get(key);
    if (r === undefined) {
      r = index.size;
      index.set(key, r);
      if ((r + 1) * (dim + 1) > vectors.length) {
        const grown = new Float64Array(vectors.length * 2);
        grown.set(vectors);
        vectors = grown;
      }
      for (let d = 0; d < dim; d++) vectors[r * (dim + 1) + d] = 0.1 * (rng.uniform() - 0.5);
    }
    return r;
  };
  const prepare = (s: LabelledSample): Row => {
    const f = s.features as Record<string, unknown>;
    const tags = ids(f['item.tags']);
    return {
      user: rowOf(`u:${s.userId}`),
      side: [
        rowOf(`i:${s.itemId}`),
        rowOf(`c:${ids(f['item.category'])[0] ?? ''}`),
        rowOf(`a:${ids(f['item.creator'])[0] ?? ''}`),
        ...tags.map((t) => rowOf(`t:${t}`)),
      ],
      weight: [1, 1, 1, ...tags.map(() => 1 / tags.length)],
      logPosition: Math.log1p(s.position),
      clicked: s.clicked ? 1 : 0,
    };
  };
  const cut = Math.floor(train.length * 0.9);
  const fit = train.slice(0, cut).map(prepare);
  const valid = train.slice(cut).map(prepare);
  const scored = test.map(prepare);
  let bias = -3;
  let positionSlope = 0;
  const itemSide = new Float64Array(dim);
  const logit = (e: Row): number => {
    itemSide.fill(0);
    let z = bias + positionSlope * e.logPosition;
    e.side.forEach((r, j) => {
      const w = e.weight[j] as number;
      const at = r * (dim + 1);
      for (let d = 0; d < dim; d++)
        itemSide[d] = (itemSide[d] as number) + w * (vectors[at + d] as number);
      z += w * (vectors[at + dim] as number);
    });
    const u = e.user * (dim + 1);
    z += vectors[u + dim] as number;
    for (let d = 0; d < dim; d++) z += (vectors[u + d] as number) * (itemSide[d] as number);
    return z;
  };
  const logLoss = (rows: readonly Row[]): number => {
    let sum = 0;
    for (const e of rows) {
      const p = 1 / (1 + Math.exp(-logit(e)));
      sum -= e.clicked ? Math.log(Math.max(p, 1e-12)) : Math.log(Math.max(1 - p, 1e-12));
    }
    return sum / Math.max(1, rows.length);
  };
  let best = { loss: Number.POSITIVE_INFINITY, scores: new Float64Array(scored.length) };
  const maxEpochs = opts.maxEpochs ?? 15;
  for (let epoch = 1; epoch <= maxEpochs; epoch++) {
    const order = rng.shuffle(Array.from({ length: fit.length }, (_, i) => i));
    for (const i of order) {
      const e = fit[i] as Row;
      const g = 1 / (1 + Math.exp(-logit(e))) - e.clicked; // itemSide now holds e's item side
      const u = e.user * (dim + 1);
      e.side.forEach((r, j) => {
        const w = e.weight[j] as number;
        const at = r * (dim + 1);
        for (let d = 0; d < dim; d++)
          vectors[at + d] =
            (vectors[at + d] as number) -
            lr * (g * w * (vectors[u + d] as number) + l2 * (vectors[at + d] as number));
        vectors[at + dim] = (vectors[at + dim] as number) - lr * g * w;
      });
      for (let d = 0; d < dim; d++)
        vectors[u + d] =
          (vectors[u + d] as number) -
          lr * (g * (itemSide[d] as number) + l2 * (vectors[u + d] as number));
      vectors[u + dim] = (vectors[u + dim] as number) - lr * g;
      bias -= 0.1 * lr * g;
      positionSlope -= 0.1 * lr * g * e.logPosition;
    }
    const loss = logLoss(valid);
    opts.onEpoch?.(epoch, loss);
    if (loss >= best.loss) break;
    best = { loss, scores: Float64Array.from(scored, logit) };
  }
  return best.scores;
}
