/**
 * An incremental parser of the `text/event-stream` format (server-sent events), as the WHATWG
 * HTML standard's "event stream interpretation" defines it:
 *
 * - the stream is UTF-8 text cut into lines by CRLF, LF or CR (a CRLF split across two chunks is
 *   one line end);
 * - a line `field: value` sets a field (one space after the colon is dropped); a line starting
 *   with `:` is a comment; a line without a colon is a field with an empty value;
 * - `data` lines accumulate, joined with `\n` (a multi-line payload keeps its line breaks);
 *   `event` names the event (`message` when absent); `id` sets the event's id and the stream's
 *   last event id (a value containing NUL is ignored); `retry` with only digits is the advised
 *   reconnection delay;
 * - a blank line dispatches the event, unless no `data` line came (then the fields are dropped);
 *   an event not ended by a blank line when the stream ends is dropped.
 *
 * The parser only splits text: payloads are returned as strings (see {@link jsonData}).
 */

/** One dispatched event. */
export interface SseEvent {
  /** `event:` field, `message` when absent. */
  name: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
  /** This event's own `id:` field, or null when it had none (see {@link SseParser.lastEventId}). */
  id: string | null;
}

/** What one chunk produced, in stream order. */
export type SseItem = { kind: 'event'; event: SseEvent } | { kind: 'comment'; text: string } | { kind: 'retry'; ms: number };

export class SseParser {
  /** The last `id:` seen (persists across events, as EventSource's `lastEventId`). */
  lastEventId: string | null = null;

  private buf = '';
  /** The previous chunk ended with CR: a leading LF of the next chunk belongs to that line end. */
  private pendingCr = false;
  private name = '';
  private data: string[] = [];
  private id: string | null = null;

  /** Feeds decoded text; returns the events, comments and retry hints it completed. */
  push(text: string): SseItem[] {
    const out: SseItem[] = [];
    if (this.pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.pendingCr = false;
    this.buf += text;
    let start = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const c = this.buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(this.buf.slice(start, i), out);
      if (c === 13) {
        if (i + 1 < this.buf.length) {
          if (this.buf.charCodeAt(i + 1) === 10) i++;
        } else this.pendingCr = true;
      }
      start = i + 1;
    }
    this.buf = this.buf.slice(start);
    return out;
  }

  private line(line: string, out: SseItem[]): void {
    if (line === '') {
      if (this.data.length > 0) out.push({ kind: 'event', event: { name: this.name || 'message', data: this.data.join('\n'), id: this.id } });
      this.name = '';
      this.data = [];
      this.id = null;
      return;
    }
    if (line.startsWith(':')) {
      out.push({ kind: 'comment', text: line.slice(1).replace(/^ /, '') });
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.name = value;
    else if (field === 'id') {
      if (!value.includes('\0')) this.id = this.lastEventId = value;
    } else if (field === 'retry') {
      if (/^\d+$/.test(value)) out.push({ kind: 'retry', ms: Number(value) });
    }
  }
}

/**
 * The events of a byte stream (a fetch `Response.body`, a Node stream), decoded as UTF-8, in
 * order. Comments and retry hints are skipped; use {@link SseParser} to see them.
 */
export async function* sseEvents(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseEvent> {
  const parser = new SseParser();
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    for (const item of parser.push(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }))) {
      if (item.kind === 'event') yield item.event;
    }
  }
}

/** An event's data parsed as JSON; the OpenAI stream's `[DONE]` marker is returned as the string. */
export function jsonData(e: SseEvent): unknown {
  return e.data === '[DONE]' ? e.data : JSON.parse(e.data);
}
