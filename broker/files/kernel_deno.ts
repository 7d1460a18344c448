// The half of the file API that runs inside Deno's kernel (`deno jupyter`): the calls of
// broker/files/protocol.py.
//
// The broker never runs this file itself: broker/files/deno_helper.py sends its source with
// every call, inside an async function (nothing reaches the REPL's scope), after MIME and
// TEMP_MARK and before `await answer(CALL, DATA)`: the call as base64 of its JSON, and the
// bytes of an upload's chunk as base64 (Deno's kernel does not hand a request's buffers to
// code). The answer goes out as display data (Deno.jupyter.broadcast), which Deno
// publishes for a silent request too. Only Deno's own APIs are used: no import, no network.
//
// Paths are resolved with every symbolic link followed (realPath, which, like Python's
// os.path.realpath, also resolves paths that do not exist yet) and refused outside the
// working directory. A file read checks the open file's device, inode, size and mtime.

type Doc = Record<string, unknown>;

class Refusal extends Error {
  constructor(readonly error: Doc) {
    super(String(error.reason));
  }
}

function refuse(reason: string, path = ""): never {
  throw new Refusal({ reason, path });
}

// Deno's error classes for errno names some of its errors lack (`code`).
const ERRNO: Record<string, string> = {
  NotFound: "ENOENT",
  PermissionDenied: "EACCES",
  NotCapable: "EACCES",
  AlreadyExists: "EEXIST",
  NotADirectory: "ENOTDIR",
  IsADirectory: "EISDIR",
};

// Run a filesystem call; refuse with its errno when it fails.
function fs<T>(path: string, run: () => T): T {
  try {
    return run();
  } catch (e) {
    if (e instanceof Refusal) throw e;
    const err = e as { code?: string; name?: string; message?: string };
    const errno = err.code ?? ERRNO[err.name ?? ""] ?? "";
    throw new Refusal({ reason: "os", errno, path, detail: err.message ?? String(e) });
  }
}

function readLink(path: string): string | null {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return null; // not a link, or missing
  }
}

// The physical path of an absolute path, every symbolic link followed; components that
// do not exist are kept as they are.
function realPath(path: string): string {
  const todo = path.split("/").filter((p) => p);
  let cur = "";
  let hops = 0;
  while (todo.length) {
    const part = todo.shift() as string;
    if (part === ".") continue;
    if (part === "..") {
      cur = cur.slice(0, cur.lastIndexOf("/"));
      continue;
    }
    const next = `${cur}/${part}`;
    const link = readLink(next);
    if (link === null) {
      cur = next;
      continue;
    }
    if (++hops > 40) throw new Refusal({ reason: "os", errno: "ELOOP", path });
    if (link.startsWith("/")) cur = "";
    todo.unshift(...link.split("/").filter((p) => p));
  }
  return cur || "/";
}

const rootDir = () => realPath(Deno.cwd());

const inside = (root: string, real: string) =>
  root === "/" || real === root || real.startsWith(root + "/");

function resolve(rel: string): string {
  if (rel.startsWith("/") || rel.split("/").includes("..")) refuse("bad_path", rel);
  const root = rootDir();
  const real = realPath(rel ? `${root}/${rel}` : root);
  if (!inside(root, real)) refuse("outside", rel);
  return real;
}

const dirOf = (path: string) => path.slice(0, path.lastIndexOf("/"));
const baseOf = (path: string) => path.slice(path.lastIndexOf("/") + 1);
const parentOf = (rel: string) => (rel.includes("/") ? dirOf(rel) : "");
const childOf = (rel: string, name: string) => (rel ? `${rel}/${name}` : name);

function model(rel: string, info: Deno.FileInfo): Doc {
  return {
    name: baseOf(rel),
    path: rel,
    type: info.isDirectory ? "directory" : "file",
    size: info.isDirectory ? null : info.size,
    mtime: (info.mtime?.getTime() ?? 0) / 1000,
  };
}

function statOrLink(path: string): Deno.FileInfo {
  try {
    return Deno.statSync(path);
  } catch {
    return Deno.lstatSync(path); // a broken link: describe the link itself
  }
}

// Python's order: by code point.
function byCodePoint(a: string, b: string): number {
  const x = [...a], y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = (x[i].codePointAt(0) as number) - (y[i].codePointAt(0) as number);
    if (d) return d;
  }
  return x.length - y.length;
}

const ident = (info: Deno.FileInfo) => [info.dev, info.ino, info.size, info.mtime?.getTime() ?? 0];

const sameIdent = (a: unknown[], b: unknown[]) =>
  a.length === b.length && a.every((v, i) => v === b[i]);

const toBase64 = (bytes: Uint8Array): string =>
  // deno-lint-ignore no-explicit-any
  (bytes as any).toBase64?.() ?? btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));

const fromBase64 = (text: string): Uint8Array =>
  // deno-lint-ignore no-explicit-any
  (Uint8Array as any).fromBase64?.(text) ?? Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

function readAt(file: Deno.FsFile, offset: number, length: number): Uint8Array {
  const buf = new Uint8Array(length);
  file.seekSync(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < length) {
    const n = file.readSync(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return buf.subarray(0, got);
}

function listing(rel: string, real: string, maxEntries: number): Doc {
  const names = fs(rel, () => [...Deno.readDirSync(real)])
    .map((e) => e.name)
    .filter((n) => !n.includes(TEMP_MARK))
    .sort(byCodePoint);
  const entries = names
    .slice(0, maxEntries)
    .map((n) => model(childOf(rel, n), statOrLink(`${real}/${n}`)));
  return { entries, truncated: names.length > maxEntries };
}

function describe(rel: string, maxEntries: number, firstBytes: number): Doc {
  const real = resolve(rel);
  const info = fs(rel, () => Deno.statSync(real));
  if (info.isDirectory) return { ...model(rel, info), ...listing(rel, real, maxEntries) };
  if (!info.isFile) refuse("not_regular", rel);
  const file = fs(rel, () => Deno.openSync(real, { read: true }));
  try {
    const opened = file.statSync();
    const data = readAt(file, 0, firstBytes);
    return { ...model(rel, opened), ident: ident(opened), data: toBase64(data) };
  } finally {
    file.close();
  }
}

function read(rel: string, offset: number, length: number, expected: unknown[]): Doc {
  const file = fs(rel, () => Deno.openSync(resolve(rel), { read: true }));
  try {
    if (!sameIdent(ident(file.statSync()), expected)) refuse("changed", rel);
    return { data: toBase64(readAt(file, offset, length)) };
  } finally {
    file.close();
  }
}

const tempPath = (real: string, transfer: string) =>
  `${dirOf(real)}/.${baseOf(real)}${TEMP_MARK}${transfer}`;

function checkTemp(temp: string): string {
  if (!baseOf(temp).includes(TEMP_MARK) || !inside(rootDir(), realPath(temp))) {
    refuse("not_upload");
  }
  return temp;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const isDirectory = (path: string) => exists(path) && Deno.statSync(path).isDirectory;

function beginUpload(rel: string, transfer: string): Doc {
  if (!rel) refuse("no_name");
  const real = resolve(rel);
  if (isDirectory(real)) refuse("is_directory", rel);
  fs(parentOf(rel), () => Deno.mkdirSync(dirOf(real), { recursive: true }));
  const temp = tempPath(real, transfer);
  fs(rel, () => Deno.openSync(temp, { write: true, createNew: true }).close());
  return { temp };
}

function writeChunk(temp: string, offset: number, data: string): Doc {
  const bytes = fromBase64(data);
  const file = fs(baseOf(temp), () => Deno.openSync(checkTemp(temp), { write: true }));
  try {
    file.seekSync(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < bytes.length) {
      done += fs(baseOf(temp), () => file.writeSync(bytes.subarray(done)));
    }
  } finally {
    file.close();
  }
  return { written: offset + bytes.length };
}

function commitUpload(temp: string, rel: string): Doc {
  checkTemp(temp);
  const real = resolve(rel);
  if (isDirectory(real)) {
    Deno.removeSync(temp);
    refuse("became_directory", rel);
  }
  const created = !exists(real);
  fs(rel, () => Deno.renameSync(temp, real));
  return { ...model(rel, fs(rel, () => Deno.statSync(real))), created };
}

function abortUpload(rel: string, transfer: string): Doc {
  const temp = tempPath(resolve(rel), transfer);
  try {
    Deno.removeSync(temp);
  } catch {
    // never begun, or already gone
  }
  return {};
}

function remove(rel: string): Doc {
  if (!rel) refuse("root");
  const target = `${resolve(parentOf(rel))}/${baseOf(rel)}`;
  fs(rel, () => Deno.lstatSync(target));
  fs(rel, () => Deno.removeSync(target));
  return {};
}

const CALLS: Record<string, (...args: never[]) => Doc> = {
  describe,
  read,
  begin_upload: beginUpload,
  write_chunk: writeChunk,
  commit_upload: commitUpload,
  abort_upload: abortUpload,
  delete: remove,
};

async function answer(call: string, data: string): Promise<void> {
  let doc: Doc;
  try {
    const request = JSON.parse(new TextDecoder().decode(fromBase64(call)));
    const args = request.function === "write_chunk" ? [...request.args, data] : request.args;
    doc = CALLS[request.function](...(args as never[]));
  } catch (e) {
    doc = { error: e instanceof Refusal ? e.error : { reason: "internal", detail: String(e) } };
  }
  await Deno.jupyter.broadcast("display_data", { data: { [MIME]: doc }, metadata: {}, transient: {} });
}
