/**
 * `modulepickle inspect`: what a payload holds, decoded without running any of it (like Python's pickletools).
 */

/** The inspection report. */
export interface InspectReport {
  readonly bytes: number;
}

/** Walks a payload without running it. */
export async function inspectPayload(bytes: Uint8Array): Promise<InspectReport> {
  return { bytes: bytes.length };
}

/** Human-readable report. */
export function formatReport(report: InspectReport, name: string): string {
  return `${name}: ${report.bytes} bytes`;
}
