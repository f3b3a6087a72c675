/** @starq/sse — parsing of server-sent events (`text/event-stream`), for clients of the gateway. */
export * from './parser';
