#!/usr/bin/env node
// Entry point: runs the TypeScript CLI in this very process through tsx's loader (no separate
// compile step, and no wrapper process between the CLI and the signals it handles: Ctrl-C
// reaches the CLI directly, which stops cleanly and exits 130).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
