export declare const CORE_LIMIT: number
export declare function bundleSize(file: string): Promise<{ minified: number; gzip: number }>
