// A small Markdown reader for templates' READMEs: headings, paragraphs, lists, code
// blocks, `code` and **bold**. It builds elements and text nodes only, so nothing in a
// README (a public template's, written by anyone) is ever parsed as HTML.

import { h } from "./dom.js";

function inline(text) {
  const parts = [];
  const pattern = /(`[^`]+`|\*\*[^*]+\*\*)/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) parts.push(text.slice(last, match.index));
    const token = match[0];
    parts.push(token.startsWith("`") ? h("code", {}, token.slice(1, -1)) : h("strong", {}, token.slice(2, -2)));
    last = match.index + token.length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

/** `source` as elements; `#` becomes `h<1 + shift>` (a README sits under the page's headings). */
export function markdown(source, { shift = 2 } = {}) {
  const blocks = [];
  const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
  let paragraph = [];
  let list = null;
  const flush = () => {
    if (paragraph.length) blocks.push(h("p", {}, inline(paragraph.join(" "))));
    paragraph = [];
    list = null;
  };
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    if (line.startsWith("```")) {
      flush();
      const code = [];
      for (i += 1; i < lines.length && !lines[i].startsWith("```"); i += 1) code.push(lines[i]);
      blocks.push(h("pre", { class: "code" }, code.join("\n")));
      continue;
    }
    const heading = /^(#{1,4})\s+(.*)$/.exec(line);
    const item = /^\s*(?:[-*]|\d+\.)\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      blocks.push(h(`h${Math.min(6, heading[1].length + shift)}`, {}, inline(heading[2])));
    } else if (item) {
      if (paragraph.length) {
        blocks.push(h("p", {}, inline(paragraph.join(" "))));
        paragraph = [];
      }
      if (!list) {
        list = h(/^\s*\d/.test(line) ? "ol" : "ul", {});
        blocks.push(list);
      }
      list.append(h("li", {}, inline(item[1])));
    } else if (!line.trim()) {
      flush();
    } else {
      list = null;
      paragraph.push(line.trim());
    }
  }
  flush();
  return blocks;
}
