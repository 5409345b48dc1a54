export { KallsymsIndex, type SymposResult } from './sympos.js';
