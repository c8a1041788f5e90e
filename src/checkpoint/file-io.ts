/**
 * Bounded reads from a model file. Every read is checked against the file size before
 * anything is allocated, so a header that lies about an offset or a length produces a
 * CheckpointError instead of a huge allocation or a short read.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { endianness } from "node:os";
import { CheckpointError } from "../errors.js";

// Readers view raw bytes through typed arrays, which use the host's byte order;
// every format we read is little-endian.
if (endianness() !== "LE") throw new Error("llmrt checkpoint readers need a little-endian host");

/** Largest single readSync (Node caps reads near 2 GiB). */
const MAX_READ = 1 << 30;

export class ModelFile {
  readonly size: number;
  private fd: number | null;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, "r");
    } catch (e) {
      throw new CheckpointError(path, `cannot open: ${(e as Error).message}`, "check the path and its permissions");
    }
    this.size = fstatSync(this.fd).size;
  }

  /** Throws unless [offset, offset + length) lies inside the file. */
  check(offset: number, length: number, what: string): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new CheckpointError(this.path, `${what}: impossible offset ${offset} / length ${length}`);
    }
    if (offset + length > this.size) {
      throw new CheckpointError(
        this.path,
        `${what}: needs bytes ${offset}..${offset + length} but the file has only ${this.size} bytes (truncated or corrupt)`,
      );
    }
  }

  /** Fills `target` with the bytes at `offset` (bounds-checked first). */
  readInto(offset: number, target: Uint8Array, what: string): void {
    this.check(offset, target.byteLength, what);
    const fd = this.handle();
    let done = 0;
    while (done < target.byteLength) {
      const n = readSync(fd, target, done, Math.min(MAX_READ, target.byteLength - done), offset + done);
      if (n <= 0) throw new CheckpointError(this.path, `${what}: unexpected end of file at byte ${offset + done}`);
      done += n;
    }
  }

  /** A fresh copy of `length` bytes at `offset`. */
  read(offset: number, length: number, what: string): Buffer {
    this.check(offset, length, what);
    const buf = Buffer.alloc(length);
    this.readInto(offset, buf, what);
    return buf;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private handle(): number {
    if (this.fd === null) throw new CheckpointError(this.path, "read after close()", "open the checkpoint again");
    return this.fd;
  }
}

const CHUNK = 1 << 20;

/**
 * Sequential little-endian reader over a ModelFile for parsing headers that may be
 * megabytes long (GGUF vocabularies), refilling a 1 MiB window as it goes.
 */
export class Cursor {
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0;

  constructor(
    readonly file: ModelFile,
    public pos = 0,
  ) {}

  get remaining(): number {
    return this.file.size - this.pos;
  }

  /** Makes `n` bytes at pos available in the window; returns their index in it. */
  private take(n: number, what: string): number {
    const end = this.bufStart + this.buf.length;
    if (this.pos < this.bufStart || this.pos + n > end) {
      this.file.check(this.pos, n, what);
      const len = Math.min(Math.max(n, CHUNK), this.file.size - this.pos);
      this.buf = this.file.read(this.pos, len, what);
      this.bufStart = this.pos;
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }

  // Each getter calls take() before touching this.buf: take() may swap the window.
  u8(what: string): number {
    const at = this.take(1, what);
    return this.buf[at];
  }
  i8(what: string): number {
    const at = this.take(1, what);
    return this.buf.readInt8(at);
  }
  u16(what: string): number {
    const at = this.take(2, what);
    return this.buf.readUInt16LE(at);
  }
  i16(what: string): number {
    const at = this.take(2, what);
    return this.buf.readInt16LE(at);
  }
  u32(what: string): number {
    const at = this.take(4, what);
    return this.buf.readUInt32LE(at);
  }
  i32(what: string): number {
    const at = this.take(4, what);
    return this.buf.readInt32LE(at);
  }
  f32(what: string): number {
    const at = this.take(4, what);
    return this.buf.readFloatLE(at);
  }
  f64(what: string): number {
    const at = this.take(8, what);
    return this.buf.readDoubleLE(at);
  }
  u64big(what: string): bigint {
    const at = this.take(8, what);
    return this.buf.readBigUInt64LE(at);
  }
  i64big(what: string): bigint {
    const at = this.take(8, what);
    return this.buf.readBigInt64LE(at);
  }

  /** A uint64 that must fit a JS number (counts, lengths, offsets). */
  u64(what: string): number {
    const at = this.take(8, what);
    const lo = this.buf.readUInt32LE(at);
    const hi = this.buf.readUInt32LE(at + 4);
    if (hi >= 1 << 21) {
      const v = this.buf.readBigUInt64LE(at);
      throw new CheckpointError(this.file.path, `${what} is ${v} at byte ${this.pos - 8}, far beyond the file size`);
    }
    return hi * 2 ** 32 + lo;
  }

  /** Copies `n` bytes (n is checked against the file size first). */
  bytes(n: number, what: string): Buffer {
    if (n > CHUNK) {
      const b = this.file.read(this.pos, n, what);
      this.pos += n;
      return b;
    }
    const at = this.take(n, what);
    return Buffer.from(this.buf.subarray(at, at + n));
  }

  /** UTF-8 text of `n` bytes. */
  utf8(n: number, what: string): string {
    if (n > CHUNK) return this.bytes(n, what).toString("utf8");
    const at = this.take(n, what);
    return this.buf.toString("utf8", at, at + n);
  }

  skip(n: number, what: string): void {
    this.file.check(this.pos, n, what);
    this.pos += n;
  }
}
