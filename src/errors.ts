// Every error RecMaster raises on purpose has a stable code and a message that says
// what to do; callers branch on the code, people read the message.

export type ErrorCode =
  | 'E_CONFIG'
  | 'E_TOPIC_UNKNOWN'
  | 'E_TOPIC_EXISTS'
  | 'E_OFFSET_OUT_OF_RANGE'
  | 'E_LOG_CORRUPT'
  | 'E_LOG_LOCKED'
  | 'E_RECORD_TOO_LARGE'
  | 'E_CLOSED'
  | 'E_EVENT_INVALID'
  | 'E_STORE_FORMAT'
  /** A model on disk with bad shapes, non-finite weights or an unreadable manifest. */
  | 'E_MODEL_INVALID'
  /** No model version to serve yet (train one first). */
  | 'E_MODEL_MISSING'
  /** A vector, id, attribute or k the vector index cannot accept (wrong dimension, NaN, ...). */
  | 'E_VECTOR_INVALID'
  /** A vector index directory built with another dimension, metric or kind. */
  | 'E_VECTOR_CONFIG'
  /** Vector index files that do not match their manifest. */
  | 'E_VECTOR_CORRUPT'
  /** A vector index used after close. */
  | 'E_VECTOR_CLOSED';

export class RecmasterError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RecmasterError';
    this.code = code;
  }
}

export function isRecmasterError(err: unknown, code?: ErrorCode): err is RecmasterError {
  return err instanceof RecmasterError && (code === undefined || err.code === code);
}
