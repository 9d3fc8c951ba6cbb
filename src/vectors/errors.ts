// Errors of the vector index: RecmasterErrors whose code is one of the E_VECTOR_* codes, so
// the CLI and callers handle them like every other error of the project.
import { type ErrorCode, RecmasterError } from '../errors.js';

export type VectorErrorCode = Extract<ErrorCode, `E_VECTOR_${string}`>;

export class VectorIndexError extends RecmasterError {
  declare readonly code: VectorErrorCode;

  constructor(code: VectorErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'VectorIndexError';
  }
}

export function isVectorIndexError(err: unknown, code?: VectorErrorCode): err is VectorIndexError {
  return err instanceof VectorIndexError && (code === undefined || err.code === code);
}
