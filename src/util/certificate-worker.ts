/**
 * A self-signed certificate made in a worker thread, for the long-running gateway: node-forge (the
 * certificate builder, certificates.ts) and the code its pure-JavaScript signing compiles then live
 * in the worker's heap, which is handed back when the worker ends, instead of staying in the
 * gateway's for as long as it runs (about 7 MB at a relay's first start). Commands that end anyway
 * (setup, credential rotate) call certificates.ts directly.
 *
 * This file is both sides: imported, it starts itself as the worker; run as the worker (its
 * workerData names the job), it makes the certificate and posts it back.
 */
import { once } from 'node:events';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { SelfSignedOptions } from './certificates.ts';
import { entryFile } from './paths.ts';

const JOB = 'mailbridge.self-signed-certificate';

interface Job {
  job: typeof JOB;
  options: SelfSignedOptions;
}

if (!isMainThread && (workerData as Job | undefined)?.job === JOB) {
  const { selfSignedCertificate } = await import('./certificates.ts');
  parentPort!.postMessage(selfSignedCertificate((workerData as Job).options));
}

/** certificates.ts's selfSignedCertificate, run in a worker thread that ends when it is done. */
export async function selfSignedCertificateApart(options: SelfSignedOptions): Promise<{ keyPem: string; certPem: string }> {
  // No options of the parent's command line (V8's apply to the whole process anyway; --input-type and the like would refuse this file).
  const worker = new Worker(entryFile('certificate-worker'), { execArgv: [], workerData: { job: JOB, options } satisfies Job });
  const failed = once(worker, 'error').then(([err]) => Promise.reject(err as Error));
  const [made] = (await Promise.race([once(worker, 'message'), failed])) as [{ keyPem: string; certPem: string }];
  await worker.terminate();
  return made;
}
