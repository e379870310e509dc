/**
 * The part of `ws` (a dependency of @fastify/websocket; the package ships no types and @types/ws
 * is not installed) that this code uses: the server side through @fastify/websocket, the client
 * side in the SDK and tests (Node 20 has no global WebSocket).
 */
declare module "ws" {
  import { EventEmitter } from "node:events";
  import type { IncomingMessage } from "node:http";

  export interface ClientOptions {
    headers?: Record<string, string>;
    maxPayload?: number;
    handshakeTimeout?: number;
  }

  export class WebSocket extends EventEmitter {
    static readonly CONNECTING: 0;
    static readonly OPEN: 1;
    static readonly CLOSING: 2;
    static readonly CLOSED: 3;
    constructor(address: string | URL, protocols?: string | string[], options?: ClientOptions);
    readonly readyState: 0 | 1 | 2 | 3;
    /** Bytes queued by send() and not yet handed to the socket. */
    readonly bufferedAmount: number;
    readonly protocol: string;
    readonly isPaused: boolean;
    send(data: Buffer | string, cb?: (err?: Error) => void): void;
    send(data: Buffer | string, options: { binary?: boolean }, cb?: (err?: Error) => void): void;
    close(code?: number, reason?: string): void;
    terminate(): void;
    /** Stops reading from the socket (messages already received may still be emitted). */
    pause(): void;
    resume(): void;
  }
  export default WebSocket;

  export interface ServerOptions {
    maxPayload?: number;
    handleProtocols?: (protocols: Set<string>, request: IncomingMessage) => string | false;
    [option: string]: unknown;
  }

  export class WebSocketServer extends EventEmitter {
    constructor(options?: ServerOptions);
    readonly clients: Set<WebSocket>;
    close(cb?: (err?: Error) => void): void;
  }
  export { WebSocketServer as Server };
}
