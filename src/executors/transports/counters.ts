/** Counters of what a transport moved, for "what travelled" reports and tests. */
export interface TransferStats {
  /** Tasks sent with their function's bytes (the others sent the function hash alone). */
  functionsSent: number;
  functionBytes: number;
  argsBytes: number;
  /** Bytes of frames sent to workers, and of everything received from them. */
  bytesSent: number;
  bytesReceived: number;
}
