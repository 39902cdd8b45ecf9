import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { OperationCorrelation, ValueFamily } from "./contract.js";

/** A canonical value with the family it compares in (S5). */
export interface TaggedValue {
  readonly family: ValueFamily;
  readonly text: string;
}

/**
 * One character per family, so that values of different families never compare equal
 * even when their text does: the string "1" and the int 1 are different values (S5).
 */
export const FAMILY_TAG: Readonly<Record<ValueFamily, string>> = {
  string: "s",
  bytes: "x",
  int: "i",
  float: "f",
  bool: "b",
};

/**
 * The correlation index key (S5: a hash index, so routing cost does not grow with the
 * number of sessions). Layout: `<set length>:<set>|` then, per variable in the set's
 * order, `<family tag><text length>:<text>`, e.g. `5:order|s5:A-100`. Lengths make
 * the key unambiguous whatever characters names and values contain. Keys are unique
 * within one service; the index scopes them by service.
 */
export function correlationKeyOf(set: string, values: readonly TaggedValue[]): string {
  let key = keyPrefix(set);
  for (const value of values) key += keyPart(value.family, value.text);
  return key;
}

/** The key for canonical values stored by variable, e.g. when restoring the index (S10). */
export function correlationKey(
  correlation: OperationCorrelation,
  values: Readonly<Record<string, string>>,
): string {
  let key = keyPrefix(correlation.set);
  for (const alias of correlation.aliases) {
    const text = values[alias.variable];
    if (text === undefined) {
      throw new BridgeError(
        Code.INVALID_ARGUMENT,
        Reason.MISSING_CORRELATION_VALUE,
        `no value for correlation variable ${alias.variable} of set ${correlation.set}`,
        { metadata: { variable: alias.variable } },
      );
    }
    key += keyPart(alias.family, text);
  }
  return key;
}

/** The start of every key of a set: `<set length>:<set>|`. */
export function keyPrefix(set: string): string {
  return `${set.length}:${set}|`;
}

/** One value's part of a key: `<family tag><text length>:<text>`. */
export function keyPart(family: ValueFamily, text: string): string {
  return `${FAMILY_TAG[family]}${text.length}:${text}`;
}

/** `order_id="A-100", tenant="acme"`, for error messages and logs. */
export function describeCorrelation(values: Readonly<Record<string, string>>): string {
  return Object.entries(values)
    .map(([variable, text]) => `${variable}=${JSON.stringify(text)}`)
    .join(", ");
}
