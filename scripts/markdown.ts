/**
 * Text from the program (catalogue entries, schema and API descriptions) put into a Markdown page:
 * outside its `code` spans, `<…>` placeholders (`<mailbox>`) would be taken for HTML — GitHub drops
 * them, the gateway shows them escaped — and `*` for emphasis, so they are escaped.
 */
export function mdEscape(text: string, more: (plain: string) => string = (plain) => plain): string {
  return text
    .split(/(`[^`]*`)/)
    .map((part) => (part.startsWith('`') ? part : more(part.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\*/g, '\\*'))))
    .join('');
}
