/** API paths the SDK's resource classes share (its own module: machines.ts and exec-stream.ts both use it). */
export const machinePath = (id: string, rest = "") => `/machines/${encodeURIComponent(id)}${rest}`;
