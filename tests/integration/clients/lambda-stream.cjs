// SPDX-License-Identifier: Apache-2.0
// InvokeWithResponseStream through the AWS SDK for JavaScript against husk's Lambda front
// door: prints one JSON line per event (with the milliseconds since the call), then the same
// payload through Invoke. Usage: node lambda-stream.cjs ENDPOINT FUNCTION PAYLOAD
const { LambdaClient, InvokeCommand, InvokeWithResponseStreamCommand } =
    require("@aws-sdk/client-lambda");

async function main() {
    const [endpoint, name, payload] = process.argv.slice(2);
    const client = new LambdaClient({
        endpoint, region: "us-east-1", maxAttempts: 1,
        credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
    });
    const t0 = Date.now();
    const r = await client.send(new InvokeWithResponseStreamCommand({
        FunctionName: name, Payload: Buffer.from(payload), LogType: "Tail",
    }));
    const out = (o) => console.log(JSON.stringify({ ms: Date.now() - t0, ...o }));
    out({ status: r.StatusCode, version: r.ExecutedVersion });
    for await (const ev of r.EventStream) {
        if (ev.PayloadChunk)
            out({ chunk: Buffer.from(ev.PayloadChunk.Payload).toString() });
        if (ev.InvokeComplete) {
            const c = ev.InvokeComplete;
            out({ complete: { error: c.ErrorCode, details: c.ErrorDetails,
                              log: c.LogResult && Buffer.from(c.LogResult, "base64").toString() } });
        }
    }
    const r2 = await client.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from(payload) }));
    out({ invoke: { status: r2.StatusCode, error: r2.FunctionError,
                    payload: Buffer.from(r2.Payload).toString() } });
}

main().catch((e) => { console.error(e); process.exit(1); });
