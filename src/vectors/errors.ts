// Errors of the vector index, with a stable code like RecmasterError. Kept here rather
// than in src/errors.ts only because this stage was built without touching shared files;
// folding these codes into ErrorCode is a two-line move.

export type VectorErrorCode =
  /** A vector, id, attribute or k that cannot be accepted (wrong dimension, NaN, ...). */
  | 'E_VECTOR_INVALID'
  /** The directory holds an index built with another dimension, metric or kind. */
  | 'E_VECTOR_CONFIG'
  /** The files on disk do not match their manifest. */
  | 'E_VECTOR_CORRUPT'
  /** The index was closed. */
  | 'E_VECTOR_CLOSED';

export class VectorIndexError extends Error {
  readonly code: VectorErrorCode;

  constructor(code: VectorErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VectorIndexError';
    this.code = code;
  }
}

export function isVectorIndexError(err: unknown, code?: VectorErrorCode): err is VectorIndexError {
  return err instanceof VectorIndexError && (code === undefined || err.code === code);
}
