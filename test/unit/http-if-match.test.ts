// If-Match and ETag: the slot's active version as an entity tag.
import t from 'tap';
import { etag, parseIfMatch } from '../../daemon/src/http/if-match';
import { isMimdError } from '../../daemon/src/domain/errors';

t.test('etag', async (t) => {
  t.equal(etag(3), '"3"');
  t.equal(etag(null), '"none"');
});

t.test('accepted forms', async (t) => {
  t.equal(parseIfMatch('"3"'), 3);
  t.equal(parseIfMatch('  "42" '), 42, 'optional whitespace around the value');
  t.equal(parseIfMatch('"9007199254740991"'), Number.MAX_SAFE_INTEGER);
  t.equal(parseIfMatch('"none"'), null, 'the slot must be empty');
  t.equal(parseIfMatch('*'), undefined, 'any: no check');
  t.equal(parseIfMatch(undefined), undefined, 'absent: no check');
  t.equal(parseIfMatch(['"5"']), 5, 'one header line as an array');
});

t.test('anything else is a 400 naming If-Match', async (t) => {
  for (const bad of ['3', '"0"', '"03"', '"-1"', '"1.5"', '"abc"', 'W/"3"', '"3", "4"', '"none", "3"', '', '""', '"9007199254740993"', '"99999999999999999"', '"NONE"', ['"3"', '"4"']]) {
    let err: unknown;
    try {
      parseIfMatch(bad);
    } catch (e) {
      err = e;
    }
    t.ok(isMimdError(err), `${JSON.stringify(bad)} refused`);
    t.has(err, { statusCode: 400, code: 'MIMD_BAD_INPUT', field: 'If-Match' });
  }
});
