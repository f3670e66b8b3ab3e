// Generates src/openapi.ts (TypeScript types) from keyplane's OpenAPI
// document, with openapi-typescript. Used by scripts/openapi.mjs to write
// the files and by test/openapi.test.ts to check they have not drifted.
import openapiTS, { astToString } from "openapi-typescript";

export const header = `// Generated from keyplane's OpenAPI document (js/node/openapi.json) by
// openapi-typescript: do not edit. Regenerate with \`npm run openapi -w node\`
// (from js/), which fetches the document from a freshly built \`keyplane serve\`.
`;

export async function generateTypes(doc: unknown): Promise<string> {
  // openapi-typescript takes the document as a parsed object (or a URL/string).
  const ast = await openapiTS(doc as Parameters<typeof openapiTS>[0], { alphabetize: false });
  return header + "\n" + astToString(ast);
}

/** normalize drops what differs between builds of the same code: the version. */
export function normalize(doc: any): any {
  const copy = structuredClone(doc);
  if (copy?.info) delete copy.info.version;
  return copy;
}

/** serialize is how the document is committed: 2-space JSON and a newline. */
export function serialize(doc: unknown): string {
  return JSON.stringify(doc, null, 2) + "\n";
}
