import { expect } from "chai";
import { scanImports } from "../../../bridge/contracts/import-closure.js";

describe("scanImports", () => {
  it("finds every import form with the position of its keyword", () => {
    const text = [
      'syntax = "proto3";',
      "package a.b;",
      'import "x/one.proto";',
      '  import public "x/two.proto";',
      'import weak "x/three.proto"; import option "x/four.proto";',
    ].join("\n");
    expect(scanImports(text)).to.deep.equal([
      { target: "x/one.proto", line: 3, column: 1 },
      { target: "x/two.proto", line: 4, column: 3 },
      { target: "x/three.proto", line: 5, column: 1 },
      { target: "x/four.proto", line: 5, column: 30 },
    ]);
  });

  it("ignores imports inside comments and strings, and words that only look like import", () => {
    const text = [
      'syntax = "proto3";',
      '// import "commented.proto";',
      '/* import "block.proto";',
      '   import "still-block.proto"; */',
      'option java_package = "import \\"quoted.proto\\";";',
      "message importer { string import = 1; }",
      'import "real.proto";',
    ].join("\n");
    expect(scanImports(text)).to.deep.equal([{ target: "real.proto", line: 7, column: 1 }]);
  });
});
