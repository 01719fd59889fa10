/**
 * Aedes launcher for the benchmark: in-memory persistence (the default), plain TCP on
 * 127.0.0.1. Prints `READY <port>` once listening. Exits on SIGTERM or when stdin closes.
 */
import { Aedes } from 'aedes';
import { serveAedes } from './aedes-serve.js';

serveAedes(await Aedes.createBroker(), Number(process.argv[2] ?? 0));
