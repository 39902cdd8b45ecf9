import { expect } from "chai";
import { newId } from "./ids.js";

describe("session and message ids (S1, DESIGN §7)", () => {
  const COUNT = 200_000;
  const ids = Array.from({ length: COUNT }, () => newId());

  it("are 22 URL-safe characters and never start with '-' (a command line reads that as an option)", () => {
    // With a plain base64url encoding one id in 64 starts with '-': about 3000 here.
    const bad = ids.filter((id) => !/^[A-Za-z0-9][A-Za-z0-9_-]{21}$/.test(id));
    expect(bad.slice(0, 5)).to.deep.equal([]);
  });

  it("are distinct and use every allowed first character and every tail character", () => {
    expect(new Set(ids).size).to.equal(COUNT);
    const leads = new Set(ids.map((id) => id[0]));
    expect(leads.size).to.equal(62);
    const tail = new Set(ids.flatMap((id) => [...id.slice(1)]));
    expect(tail.size).to.equal(64);
  });

  it("draw every character position from the full alphabet, including the last", () => {
    // The last character carries 6 bits too: 21 × 6 + log2(62) ≈ 131.95 random bits ≥ 128.
    const last = new Set(ids.map((id) => id[21]));
    expect(last.size).to.equal(64);
  });
});
