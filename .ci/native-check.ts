// Native and wasm packages must really load here, not just install.
import { tmpdir } from 'node:os';
import { crc32c } from '@node-rs/crc32';
import * as tf from '@tensorflow/tfjs';
import { open } from 'lmdb';
import { useWasmBackend } from '../src/util/tf.js';
import { UsearchIndex } from '../src/vectors/index.js';

if (crc32c('a') !== 3251651376) throw new Error('@node-rs/crc32 gives a wrong checksum');
const db = open({ path: `${tmpdir()}/recmaster-ci-lmdb` });
db.putSync('k', 1);
if (db.get('k') !== 1) throw new Error('lmdb did not read back its write');
const index = await UsearchIndex.open({ dim: 2 });
await index.upsert([{ id: 'a', vector: new Float32Array([1, 0]) }]);
if ((await index.search(new Float32Array([1, 0]), 1))[0]?.id !== 'a')
  throw new Error('usearch search failed');
await useWasmBackend();
if (tf.getBackend() !== 'wasm') throw new Error('the TensorFlow.js wasm backend did not start');
console.log('native packages load: @node-rs/crc32, lmdb, usearch, @tensorflow/tfjs-backend-wasm');
