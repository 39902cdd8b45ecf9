// chai 6 ships no type declarations and @types/chai is not a devDependency yet. Until it is,
// this makes `import { expect } from "chai"` compile (untyped). Delete it once
// @types/chai is installed.
declare module "chai";
