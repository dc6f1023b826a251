// The one seam to zod: schemas are declared with `z` from here, and data is checked with
// `schemaProblems`, which turns zod's issues into "field.path: message" lines a user can act on.
import { z } from 'zod';

export { z };

/** The problems of data against schema, one "path: message" per issue; [] with the parsed value when it fits. */
export function schemaProblems<T extends z.ZodType>(schema: T, data: unknown): { value: z.infer<T>; problems: [] } | { value: undefined; problems: string[] } {
  const parsed = schema.safeParse(data);
  if (parsed.success) return { value: parsed.data, problems: [] };
  return { value: undefined, problems: parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`) };
}
