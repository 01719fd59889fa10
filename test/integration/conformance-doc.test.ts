/** docs/conformance.md is generated from the spec test titles and must be current. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { CONFORMANCE_DOC, renderConformance } from '../../scripts/conformance.js';

void it('docs/conformance.md matches the spec test titles (regenerate with npm run conformance)', () => {
  assert.equal(readFileSync(CONFORMANCE_DOC, 'utf8'), renderConformance());
});
