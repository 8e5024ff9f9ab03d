const a = require('a');
import def, { b } from "./b.js";
export * from '@s/p';
