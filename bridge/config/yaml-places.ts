import { isMap, isScalar, isSeq, type Node } from "yaml";

/** Keys and list indexes from the document root: ["processes", 0, "services", 1]. */
export type KeyPath = readonly PropertyKey[];

/**
 * Offset of the node at a key path: of its key when `atKey`, else of its value; the
 * nearest ancestor present when the key is absent, so a missing key points at the
 * mapping that lacks it.
 */
export function offsetOf(contents: unknown, keyPath: KeyPath, atKey: boolean): number | undefined {
  let node = contents as Node | null | undefined;
  let offset = node?.range?.[0];
  for (const [index, segment] of keyPath.entries()) {
    let next: Node | null | undefined;
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && item.key.value === segment);
      if (pair === undefined) return offset;
      const key = pair.key as Node;
      if (atKey && index === keyPath.length - 1) return key.range?.[0] ?? offset;
      next = pair.value as Node | null;
      // `key:` with nothing after it: point at the key.
      offset = next?.range?.[0] ?? key.range?.[0] ?? offset;
    } else if (isSeq(node) && typeof segment === "number") {
      next = node.items[segment] as Node | undefined;
      offset = next?.range?.[0] ?? offset;
    } else {
      return offset;
    }
    node = next;
  }
  return offset;
}

/** ["processes", 0, "location"] → "processes[0].location". */
export function formatKeyPath(keyPath: KeyPath): string {
  let text = "";
  for (const segment of keyPath) {
    if (typeof segment === "number") text += `[${segment}]`;
    else text += text === "" ? String(segment) : `.${String(segment)}`;
  }
  return text;
}
