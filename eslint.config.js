import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'packages/*/dist/**', 'node_modules/**', 'data/**', 'test/fixtures/**', '**/*.js', '!eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'max-lines': ['error', { max: 900, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    // The codec is pure: no I/O and nothing else from src/ [DEVELOPERS.md, ARCHITECTURE.md].
    files: ['src/protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['../*', '!../protocol/*'], message: 'src/protocol is pure: it imports nothing else from src/.' },
            {
              group: [
                'node:fs',
                'node:fs/*',
                'node:net',
                'node:tls',
                'node:http',
                'node:https',
                'node:dgram',
                'node:child_process',
                'fs',
                'net',
                'tls',
                'http',
              ],
              message: 'src/protocol does no I/O.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/topics/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../core/*', '../store/*', '../transport/*', '../cli/*', '../security/*', '../config/*', '../broker.js', '../broker/*'],
              message: 'src/topics is a pure data structure.',
            },
            { group: ['node:fs', 'node:net', 'node:tls', 'node:http', 'fs', 'net'], message: 'src/topics does no I/O.' },
          ],
        },
      ],
    },
  },
  {
    // The core knows sockets only as a Duplex and storage only through the Store interface.
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['../store/lmdb.js', '../store/memory.js'], message: 'src/core uses storage only through the Store interface (src/store/types.ts).' },
            {
              group: ['../transport/tcp.js', '../transport/ws.js', '../transport/tls.js', '../transport/wss.js', '../transport/tls-context.js'],
              message: 'src/core knows no transport but its types.',
            },
            { group: ['../cli/*', '../config/*', '../broker.js', '../broker/*'], message: 'src/core does not depend on the layers above it.' },
            {
              group: ['node:fs', 'node:net', 'node:tls', 'node:http', 'node:https', 'fs', 'net', 'tls', 'http', 'ws', 'lmdb', 'ioredis'],
              message: 'src/core does no I/O of its own.',
            },
          ],
        },
      ],
    },
  },
  {
    // The admin listener sees the broker only through AdminBackend (src/admin/types.ts) and the
    // observability classes; it never reaches into the core, the store or the transports.
    files: ['src/admin/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../core/*', '../store/*', '../transport/*', '../cluster/*', '../broker.js', '../broker/*', '../cli/*', '../config/*'],
              message: 'src/admin uses the broker only through AdminBackend (src/admin/types.ts).',
            },
          ],
        },
      ],
    },
  },
  {
    // Exporters read counters; they never take part in routing or I/O of the broker.
    files: ['src/observability/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../admin/*', '../broker.js', '../broker/*', '../cli/*', '../config/*', '../store/lmdb.js', '../store/memory.js', '../transport/*'],
              message: 'src/observability reads the core; it does not depend on the layers above it.',
            },
            {
              group: ['node:net', 'node:tls', 'node:http', 'node:https', 'net', 'tls', 'http', 'ws', 'lmdb', 'ioredis'],
              message: 'src/observability does no network I/O (src/admin serves it).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'scripts/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      'max-lines': 'off',
    },
  },
);
