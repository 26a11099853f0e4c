// Reference data generator: renders badges with shields.io's `badge-maker`
// and dumps their SVG plus the geometry the Rust renderer must reproduce.
//
// How to run (from the repository root):
//   cd tools/badge-maker && npm install --save-exact badge-maker@6.0.0 && node generate.mjs > ../../tests/data/badge-maker.json
//
// (--save-exact keeps the pin in package.json exact; without it npm rewrites
// it to "^6.0.0". Since package.json already pins 6.0.0, a plain
// `npm install` works too.) Output is deterministic: same badge-maker
// version -> byte-identical JSON. node_modules/ and package-lock.json are
// not committed.
//
// Notes on the inputs:
// - Keys whose value is null below are OMITTED from the makeBadge() call:
//   badge-maker throws a ValidationError for an explicit `undefined`/`null`.
// - Hex colours are accepted with or without '#': bare 3/6-digit hex
//   ("abc", "ff69b4") matches badge-maker's own hex regex; "#..." goes through
//   the CSS-colour path. Both end up as lower-case "#rrggbb"/"#rgb" in the SVG.
//   The exact string passed is recorded in the output.
// - Numeric attributes are emitted as JSON numbers (badge-maker formats them
//   with JS Number->string, so String(Number(s)) === s is asserted); anything
//   that would not round-trip is kept as a string. The `svg` field is the
//   authoritative byte-exact output.

import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { makeBadge } from 'badge-maker'

const require = createRequire(import.meta.url)
const pkgDir = path.resolve(path.dirname(require.resolve('badge-maker')), '..')
const badgeMakerVersion = JSON.parse(
  readFileSync(path.join(pkgDir, 'package.json'), 'utf8'),
).version

const STYLES = ['flat', 'flat-square', 'plastic', 'for-the-badge']

// [label, message, color, labelColor]; null = key omitted.
const PAIRS = [
  ['hits', '0', 'brightgreen', null],
  ['hits', '7', 'brightgreen', null],
  ['hits', '42', 'brightgreen', null],
  ['hits', '1234', 'brightgreen', null],
  ['hits', '1,234', 'brightgreen', null],
  ['hits', '1.2k', 'brightgreen', null],
  ['hits', '42', null, null], // no colour at all -> default '#4b0'
  ['', '42', 'brightgreen', null], // label-less
  ['', '1234567890', 'brightgreen', null],
  ['views', '999', 'brightgreen', null],
  ['page views', '12 / 3456', 'brightgreen', null],
  ['Hits Today', '7', 'brightgreen', null],
  ['WWWWWWWWWW', '1234567890', 'brightgreen', null], // wide glyphs
  ['iiiiiiii', '0', 'brightgreen', null], // narrow glyphs
  ['ünïcödé', '42', 'brightgreen', null], // Latin-1 non-ASCII
  ['a<b>&"c\'', '1.2k', 'brightgreen', null], // XML specials
  ['日本語', '999', 'brightgreen', null], // CJK (fallback width)
  ['hits', 'no url', 'lightgrey', null],
  ['hits', 'bad url', 'red', null],
  ['hits', '42', 'blue', null],
  ['views', '1234', 'informational', null], // alias -> blue
  ['page views', '999', 'ff69b4', null], // bare 6-digit hex
  ['hits', '7', 'abc', null], // bare 3-digit hex, light bg -> dark text
  ['hits', '7', '#ABC', null], // '#'-prefixed upper-case hex
  ['hits', '42', 'brightgreen', 'blue'], // labelColor named
  ['views', '1,234', 'ff69b4', '333'], // labelColor bare hex
  ['', '7', 'brightgreen', '333'], // empty label + labelColor: left rect still drawn
]

const num = s => (String(Number(s)) === s ? Number(s) : s)

function attrsOf(tag) {
  const out = {}
  for (const m of tag.matchAll(/\s([\w:-]+)="([^"]*)"/g)) out[m[1]] = m[2]
  return out
}

const unescapeXml = s =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&')

function extract(svg) {
  const root = attrsOf(svg.match(/^<svg\b[^>]*>/)[0])
  const rects = [...svg.matchAll(/<rect\b[^>]*?\/?>/g)].map(([tag]) => {
    const a = attrsOf(tag)
    const r = { x: a.x === undefined ? null : num(a.x), width: num(a.width) }
    if (a.height !== undefined) r.height = num(a.height)
    if (a.rx !== undefined) r.rx = num(a.rx)
    if (a.fill !== undefined) r.fill = a.fill
    return r
  })
  const texts = [...svg.matchAll(/<text\b([^>]*)>([^<]*)<\/text>/g)].map(
    ([, attrStr, body]) => {
      const a = attrsOf(attrStr)
      const t = {
        x: num(a.x),
        y: num(a.y),
        textLength: num(a.textLength),
        content: unescapeXml(body),
      }
      if (a.fill !== undefined) t.fill = a.fill
      if (a['fill-opacity'] !== undefined) t.fillOpacity = a['fill-opacity']
      return t
    },
  )
  const title = svg.match(/<title>([^<]*)<\/title>/)
  return {
    width: num(root.width),
    height: num(root.height),
    ariaLabel: root['aria-label'] === undefined ? null : unescapeXml(root['aria-label']),
    title: title ? unescapeXml(title[1]) : null,
    rects,
    texts,
  }
}

const cases = []
for (const style of STYLES) {
  for (const [label, message, color, labelColor] of PAIRS) {
    const format = { label, message, style }
    if (color !== null) format.color = color
    if (labelColor !== null) format.labelColor = labelColor
    const svg = makeBadge(format)
    const g = extract(svg)
    cases.push({
      style,
      label,
      message,
      color,
      labelColor,
      svg,
      width: g.width,
      height: g.height,
      ariaLabel: g.ariaLabel,
      title: g.title,
      rects: g.rects,
      texts: g.texts,
    })
  }
}

process.stdout.write(
  JSON.stringify({ badgeMakerVersion, cases }, null, 1) + '\n',
)
