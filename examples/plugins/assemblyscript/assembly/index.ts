// count_vowels writes JSON, upper writes text: the same functions as examples/plugins/text.wat.
import { Host } from "@extism/as-pdk";

function isVowel(c: i32): bool {
  const lower = c | 32;
  return lower == 97 || lower == 101 || lower == 105 || lower == 111 || lower == 117;
}

export function count_vowels(): i32 {
  const input = Host.inputString();
  let count = 0;
  for (let i = 0; i < input.length; i++) {
    if (isVowel(input.charCodeAt(i))) count++;
  }
  Host.outputString(`{"vowels":${count}}`);
  return 0;
}

export function upper(): i32 {
  Host.outputString(Host.inputString().toUpperCase());
  return 0;
}

// AssemblyScript's default abort imports from "env"; the sandbox gives no "env", so
// route aborts through Extism's error instead.
export function myAbort(
  message: string | null,
  fileName: string | null,
  lineNumber: u32,
  columnNumber: u32,
): void {
  Host.outputString(`abort: ${message} at ${fileName}:${lineNumber}:${columnNumber}`);
  unreachable();
}
