// Drives the object store with the AWS SDK for JavaScript v3 and its default settings (CRC32 checksums on
// every upload, aws-chunked bodies with a trailing checksum for streams, checksum validation on download).
// Prints one JSON line of findings; test_objstore_sdk_js.py checks them.
//   node s3_sdk_check.mjs ENDPOINT ACCESS_KEY SECRET_KEY     (NODE_EXTRA_CA_CERTS for a test CA)
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import {
  S3Client,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  GetObjectAttributesCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

const [endpoint, accessKeyId, secretAccessKey] = process.argv.slice(2);
const s3 = new S3Client({
  endpoint,
  region: "us-east-1",
  forcePathStyle: true,
  credentials: { accessKeyId, secretAccessKey },
  maxAttempts: 1,
});
const Bucket = "assets";
const out = {};
// What each upload looked like on the wire once signed: how its body was sent and which checksum went with it.
const wire = {};
s3.middlewareStack.add(
  (next, context) => async (args) => {
    const h = args.request.headers;
    if (args.input && args.input.Key && h["x-amz-content-sha256"])
      wire[`${context.commandName}:${args.input.Key}`] = {
        payload: h["x-amz-content-sha256"],
        encoding: h["content-encoding"] || null,
        trailer: h["x-amz-trailer"] || null,
        checksum: Object.keys(h).find((k) => k.startsWith("x-amz-checksum-") && k !== "x-amz-checksum-mode") || null,
      };
    return next(args);
  },
  { step: "deserialize", name: "recordWire" }
);

// CRC-32C (Castagnoli), reflected, for an independent expected value.
function crc32c(buf) {
  let crc = 0xffffffff;
  for (const byte of buf) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  const v = (crc ^ 0xffffffff) >>> 0;
  return Buffer.from([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]).toString("base64");
}

function bytes(seed, size) {
  const chunks = [];
  let total = 0;
  for (let i = 0; total < size; i++) {
    const d = createHash("sha256").update(`${seed}:${i}`).digest();
    chunks.push(d);
    total += d.length;
  }
  return Buffer.concat(chunks).subarray(0, size);
}

async function body(r) {
  return Buffer.from(await r.Body.transformToByteArray());
}

async function code(promise) {
  try {
    await promise;
    return "accepted";
  } catch (e) {
    return e.name || e.Code || String(e);
  }
}

// Put and get with the defaults: a Buffer body (checksum in a header), then a stream (aws-chunked with the
// checksum in a trailer), both read back with checksum mode (the SDK validates what it receives).
const small = bytes("small", 300 * 1024 + 7);
const put = await s3.send(new PutObjectCommand({ Bucket, Key: "js-small", Body: small }));
out.put_crc32 = put.ChecksumCRC32 || null;
let got = await s3.send(new GetObjectCommand({ Bucket, Key: "js-small", ChecksumMode: "ENABLED" }));
out.small_ok = (await body(got)).equals(small);
out.get_crc32 = got.ChecksumCRC32 || null;

const streamed = bytes("stream", 200 * 1024 + 3);
await s3.send(
  new PutObjectCommand({
    Bucket,
    Key: "js-stream",
    Body: Readable.from([streamed.subarray(0, 70000), streamed.subarray(70000)]),
    ContentLength: streamed.length,
  })
);
got = await s3.send(new GetObjectCommand({ Bucket, Key: "js-stream", ChecksumMode: "ENABLED" }));
out.stream_ok = (await body(got)).equals(streamed);
out.stream_crc32 = got.ChecksumCRC32 || null;

// Multipart with parallel parts (lib-storage), 3 parts of which 2 full.
const big = bytes("big", 12 * 1024 * 1024 + 100);
const upload = new Upload({
  client: s3,
  params: { Bucket, Key: "js-multipart", Body: big },
  partSize: 5 * 1024 * 1024,
  queueSize: 3,
});
const done = await upload.done();
out.multipart_etag = done.ETag;
got = await s3.send(new GetObjectCommand({ Bucket, Key: "js-multipart", ChecksumMode: "ENABLED" }));
out.multipart_ok = (await body(got)).equals(big);
out.multipart_crc32 = got.ChecksumCRC32 || null;
const attrs = await s3.send(
  new GetObjectAttributesCommand({ Bucket, Key: "js-multipart", ObjectAttributes: ["ObjectParts", "ObjectSize"] })
);
out.multipart_parts = attrs.ObjectParts ? attrs.ObjectParts.TotalPartsCount : null;
out.multipart_size = attrs.ObjectSize;

// Explicit checksums, read back with checksum mode.
const hello = Buffer.from("hello, checksums");
await s3.send(new PutObjectCommand({ Bucket, Key: "js-sha256", Body: hello, ChecksumAlgorithm: "SHA256" }));
let head = await s3.send(new HeadObjectCommand({ Bucket, Key: "js-sha256", ChecksumMode: "ENABLED" }));
out.sha256 = head.ChecksumSHA256 || null;
out.sha256_expected = createHash("sha256").update(hello).digest("base64");
await s3.send(new PutObjectCommand({ Bucket, Key: "js-crc32c", Body: hello, ChecksumAlgorithm: "CRC32C" }));
head = await s3.send(new HeadObjectCommand({ Bucket, Key: "js-crc32c", ChecksumMode: "ENABLED" }));
out.crc32c = head.ChecksumCRC32C || null;
out.crc32c_expected = crc32c(hello);

// A wrong checksum is refused and nothing is stored.
out.wrong = await code(s3.send(new PutObjectCommand({ Bucket, Key: "js-wrong", Body: hello, ChecksumCRC32: "AAAAAA==" })));
out.wrong_stored = (await code(s3.send(new HeadObjectCommand({ Bucket, Key: "js-wrong" })))) === "accepted";

out.wire = wire;
console.log(JSON.stringify(out));
