import type { CatalogueSection } from '../types.ts';

/**
 * The launcher (bin/mailbridge.mjs) prints this entry itself, because on the old Node it reports
 * it cannot load the catalogue; test/packaging/launcher.test.ts checks that both texts are equal.
 */
export const launcher = {
  MB_NODE_TOO_OLD: {
    http: 500,
    title: { en: 'Node.js is too old', de: 'Node.js ist zu alt' },
    cause: {
      en: 'mailbridge needs Node.js 24 or later. It was started by Node.js {version} ({node}), and its bundled Node.js 24 runtime (the npm package "node") is not installed.',
      de: 'mailbridge braucht Node.js 24 oder neuer. Gestartet wurde es mit Node.js {version} ({node}), und die mitgelieferte Node.js-24-Laufzeit (npm-Paket „node“) ist nicht installiert.',
    },
    fix: {
      en: 'Reinstall mailbridge with its runtime: `npm install -g mailbridge` (without --omit=optional, --ignore-scripts or --allow-scripts), or `npm ci` in a checkout; or install Node.js 24 (https://nodejs.org) or the Debian package of mailbridge.',
      de: 'Installieren Sie mailbridge mit seiner Laufzeit neu: `npm install -g mailbridge` (ohne --omit=optional, --ignore-scripts oder --allow-scripts), im Quellverzeichnis `npm ci`; oder installieren Sie Node.js 24 (https://nodejs.org) oder das Debian-Paket von mailbridge.',
    },
  },
} satisfies CatalogueSection;
