// TensorFlow.js for the models: the WebAssembly backend (no native build, SIMD) and the few
// helpers every model here needs.
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

export { tf };

let backendReady: Promise<void> | undefined;

/** Selects the WebAssembly backend once per process; throws when it cannot start. */
export function useWasmBackend(): Promise<void> {
  backendReady ??= (async () => {
    const require = createRequire(import.meta.url);
    const pkg = require.resolve('@tensorflow/tfjs-backend-wasm/package.json');
    setWasmPaths(`${path.join(path.dirname(pkg), 'dist')}/`);
    if (!(await tf.setBackend('wasm')))
      throw new Error('the TensorFlow.js wasm backend did not start');
    await tf.ready();
  })();
  return backendReady;
}

/**
 * a · b whose gradients are computed with explicit transposes: the wasm backend multiplies
 * a transposed operand about ten times slower than a plain one (measured: 254 ms against
 * 67 ms for a [20480, 192]ᵀ · [20480, 64] product).
 */
export const matMul = tf.customGrad((...args: unknown[]) => {
  const [a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
      const g = dy as tf.Tensor2D;
      return [tf.matMul(g, tf.transpose(sb)), tf.matMul(tf.transpose(sa), g)];
    },
  };
}) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor2D;
