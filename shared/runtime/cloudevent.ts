// Turns an HTTP request into a validated CloudEvent envelope (binary or structured mode), or a typed error.
import { HTTP } from "cloudevents";
import * as z from "zod";
import { FunctionError, malformed } from "./errors.ts";

export type Headers = Record<string, string | string[] | undefined>;

const attribute = z.string().min(1).max(1024);
const requiredAttributes = z.object({
  specversion: z.literal("1.0"),
  id: attribute,
  source: attribute,
  type: attribute,
});

/** The envelope a function's event schema is applied to: all attributes, extensions and data. */
export type Envelope = z.infer<typeof requiredAttributes> & { subject?: string; data?: unknown } & Record<
    string,
    unknown
  >;

const header = (headers: Headers, name: string) => {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
};

export function parseCloudEvent(headers: Headers, body: Buffer): Envelope {
  const contentType = (header(headers, "content-type") ?? "").toLowerCase();
  const text = body.toString("utf8");
  let attributes: unknown;
  if (contentType.startsWith("application/cloudevents-batch+json")) {
    throw new FunctionError("malformed", "batched CloudEvents are not accepted; send one event per request");
  } else if (contentType.startsWith("application/cloudevents+json")) {
    attributes = parseJson(text, "structured-mode body");
  } else if (header(headers, "ce-specversion") !== undefined) {
    attributes = {
      specversion: header(headers, "ce-specversion"),
      id: header(headers, "ce-id"),
      source: header(headers, "ce-source"),
      type: header(headers, "ce-type"),
    };
  } else {
    throw malformed(
      "not a CloudEvent: expected binary mode (ce-specversion, ce-id, ce-source, ce-type headers) " +
        "or structured mode (Content-Type: application/cloudevents+json)",
    );
  }
  const checked = requiredAttributes.safeParse(attributes);
  if (!checked.success) throw malformed("invalid CloudEvent attributes", z.treeifyError(checked.error));

  let event;
  try {
    event = HTTP.toEvent({ headers: headers as Record<string, string>, body: text });
  } catch (err) {
    throw malformed(`invalid CloudEvent: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (Array.isArray(event)) throw malformed("batched CloudEvents are not accepted");
  const envelope: Record<string, unknown> = { ...event };
  // toEvent keeps a body that does not parse as JSON as a string; for JSON content that is a malformed event.
  if (
    typeof envelope.data === "string" &&
    /json/.test(String(envelope.datacontenttype ?? "")) &&
    envelope.data !== ""
  ) {
    envelope.data = parseJson(envelope.data, "data");
  }
  return envelope as Envelope;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw malformed(`${what} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}
