/**
 * docs/configuration.md documents every config key, environment variable and flag: its generated
 * reference section must equal what the schema renders. COURIER_UPDATE_DOCS=1 rewrites it.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderReference } from '../../src/config/reference.js';
import { USAGE } from '../../src/cli/main.js';
import { FLAG_KEYS, configKeys, pathToEnvName } from '../../src/config/index.js';

const DOC = fileURLToPath(new URL('../../docs/configuration.md', import.meta.url));
const BEGIN = '<!-- reference:begin -->\n';
const END = '<!-- reference:end -->';

void it('docs/configuration.md carries the reference generated from the schema', () => {
  const text = readFileSync(DOC, 'utf8');
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  assert.ok(start >= 0 && end > start, `${DOC} must contain the ${BEGIN.trim()} / ${END} markers`);
  const expected = renderReference();
  const actual = text.slice(start + BEGIN.length, end);
  if (actual !== expected && process.env.COURIER_UPDATE_DOCS === '1') {
    writeFileSync(DOC, text.slice(0, start + BEGIN.length) + expected + text.slice(end));
    return;
  }
  assert.equal(actual, expected, 'the reference is out of date: run this test with COURIER_UPDATE_DOCS=1');
});

void it('every key, variable and flag appears in the doc, and every flag in --help', () => {
  const text = readFileSync(DOC, 'utf8');
  for (const k of configKeys()) {
    assert.ok(text.includes(`\`${k.path.join('.')}\``), `key ${k.path.join('.')} is documented`);
    assert.ok(text.includes(pathToEnvName(k.path)), `${pathToEnvName(k.path)} is documented`);
  }
  for (const flag of [...Object.values(FLAG_KEYS).map((f) => f.flag), '--config', '--check-config', '--help', '--version']) {
    assert.ok(text.includes(flag), `${flag} is documented`);
    assert.ok(USAGE.includes(flag), `${flag} is in --help`);
  }
});
