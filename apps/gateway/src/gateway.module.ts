/**
 * Nest wiring only: the configuration is parsed once (every bad variable reported together), the
 * Gateway lives for the module's lifetime, and the controller maps URLs to the handlers in api.ts
 * and openai.ts. Bodies are read by the handlers themselves (size limit, JSON errors), so Nest's
 * body parser is off (see main.ts).
 *
 * tsx (esbuild) emits no decorator metadata: every constructor injection names its token.
 */
import {
  Catch,
  Controller,
  Delete,
  Get,
  HttpException,
  Inject,
  Injectable,
  Module,
  Param,
  Post,
  Query,
  Req,
  Res,
  type ArgumentsHost,
  type ExceptionFilter,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { AdminApi } from './admin-api';
import { guard, NativeApi } from './api';
import type { GatewayConfig } from './config';
import { Gateway } from './gateway';
import { HttpError, sendError, type Req as HttpReq, type Res as HttpRes } from './http';
import { OpenAiApi } from './openai';

export const GATEWAY_CONFIG = Symbol('GATEWAY_CONFIG');

@Injectable()
export class GatewayService implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly gateway: Gateway;
  readonly native: NativeApi;
  readonly openai: OpenAiApi;
  readonly admin: AdminApi;

  constructor(@Inject(GATEWAY_CONFIG) cfg: GatewayConfig) {
    this.gateway = new Gateway(cfg);
    this.native = new NativeApi(this.gateway);
    this.openai = new OpenAiApi(this.gateway);
    this.admin = new AdminApi(this.gateway);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.gateway.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.gateway.stop();
  }
}

@Controller()
export class GatewayController {
  constructor(@Inject(GatewayService) private readonly s: GatewayService) {}

  /** Routes that read or write jobs answer 503 `redis_unavailable` at once during an outage. */
  private withRedis(fn: () => Promise<void> | void): Promise<void> | void {
    this.s.gateway.requireRedis();
    return fn();
  }

  @Get('health')
  health(@Res() res: HttpRes) {
    return guard(res, () => this.s.native.health(res));
  }

  @Get('ready')
  ready(@Res() res: HttpRes) {
    return guard(res, () => this.s.native.ready(res));
  }

  @Get('metrics')
  metrics(@Res() res: HttpRes) {
    return guard(res, () => this.s.native.metrics(res));
  }

  @Post('v1/jobs')
  createJob(@Req() req: HttpReq, @Res() res: HttpRes) {
    return guard(res, () => this.withRedis(() => this.s.native.create(req, res)));
  }

  @Get('v1/jobs/:id')
  getJob(@Req() req: HttpReq, @Res() res: HttpRes, @Param('id') id: string) {
    return guard(res, () => this.withRedis(() => this.s.native.get(req, res, id)));
  }

  @Get('v1/jobs/:id/events')
  jobEvents(@Req() req: HttpReq, @Res() res: HttpRes, @Param('id') id: string) {
    return guard(res, () => this.withRedis(() => this.s.native.events(req, res, id)));
  }

  @Delete('v1/jobs/:id')
  cancelJob(@Req() req: HttpReq, @Res() res: HttpRes, @Param('id') id: string) {
    return guard(res, () => this.withRedis(() => this.s.native.cancel(req, res, id)));
  }

  @Get('v1/models')
  models(@Req() req: HttpReq, @Res() res: HttpRes) {
    return guard(res, () => this.s.openai.models(req, res));
  }

  @Get('v1/models/:id')
  model(@Req() req: HttpReq, @Res() res: HttpRes, @Param('id') id: string) {
    return guard(res, () => this.s.openai.model(req, res, id));
  }

  @Post('v1/completions')
  completions(@Req() req: HttpReq, @Res() res: HttpRes) {
    return guard(res, () => this.withRedis(() => this.s.openai.completions(req, res)));
  }

  @Post('v1/chat/completions')
  chat(@Req() req: HttpReq, @Res() res: HttpRes) {
    return guard(res, () => this.withRedis(() => this.s.openai.chat(req, res)));
  }

  @Get('admin')
  adminPage(@Res() res: HttpRes) {
    return guard(res, () => this.s.admin.page(res));
  }

  @Get('admin/assets/:name')
  adminAsset(@Res() res: HttpRes, @Param('name') name: string) {
    return guard(res, () => this.s.admin.asset(res, name));
  }

  @Get('admin/overview')
  adminOverview(@Req() req: HttpReq, @Res() res: HttpRes, @Query('jobs') jobs: unknown) {
    return guard(res, () => this.withRedis(() => this.s.admin.overview(req, res, jobs)));
  }

  @Get('admin/jobs')
  adminJobs(@Req() req: HttpReq, @Res() res: HttpRes, @Query('limit') limit: unknown) {
    return guard(res, () => this.withRedis(() => this.s.admin.jobs(req, res, limit)));
  }

  @Get('admin/jobs/:id')
  adminJob(@Req() req: HttpReq, @Res() res: HttpRes, @Param('id') id: string) {
    return guard(res, () => this.withRedis(() => this.s.admin.job(req, res, id)));
  }

  @Get('admin/jobs/:id/timeline')
  adminJobTimeline(@Req() req: HttpReq, @Res() res: HttpRes, @Param('id') id: string) {
    return guard(res, () => this.s.admin.timeline(req, res, id));
  }

  @Post('admin/jobs/:id/cancel')
  adminCancelJob(@Req() req: HttpReq, @Res() res: HttpRes, @Param('id') id: string) {
    return guard(res, () => this.s.admin.cancelJob(req, res, id));
  }

  @Get('admin/kv')
  adminKv(@Req() req: HttpReq, @Res() res: HttpRes) {
    return guard(res, () => this.s.admin.kvMap(req, res));
  }

  @Post('admin/kv/evict')
  adminEvict(@Req() req: HttpReq, @Res() res: HttpRes) {
    return guard(res, () => this.s.admin.evict(req, res));
  }

  @Post('admin/hosts/:id/drain')
  adminDrain(@Req() req: HttpReq, @Res() res: HttpRes, @Param('id') id: string) {
    return guard(res, () => this.s.admin.drain(req, res, id));
  }

  @Get('admin/history')
  adminHistory(@Req() req: HttpReq, @Res() res: HttpRes, @Query('span') span: unknown) {
    return guard(res, () => this.s.admin.history(req, res, span));
  }

  @Get('admin/audit')
  adminAudit(@Req() req: HttpReq, @Res() res: HttpRes, @Query('limit') limit: unknown) {
    return guard(res, () => this.s.admin.auditLog(req, res, limit));
  }

  @Get('admin/cluster')
  adminCluster(@Req() req: HttpReq, @Res() res: HttpRes) {
    return guard(res, () => this.withRedis(() => this.s.admin.cluster(req, res)));
  }
}

/** Whatever escapes a handler (unknown routes included) leaves as the JSON error body. */
@Catch()
export class JsonErrorFilter implements ExceptionFilter {
  catch(e: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const req = http.getRequest<HttpReq>();
    const res = http.getResponse<HttpRes>();
    if (e instanceof HttpException) {
      const status = e.getStatus();
      const code = status === 404 ? 'not_found' : status === 405 ? 'method_not_allowed' : 'http_error';
      const message = status === 404 ? `no route ${req.method} ${req.url?.split('?')[0]}` : e.message;
      return sendError(res, new HttpError(status, code, message));
    }
    sendError(res, e);
  }
}

@Module({})
export class GatewayModule {
  static forConfig(cfg: GatewayConfig) {
    return {
      module: GatewayModule,
      controllers: [GatewayController],
      providers: [{ provide: GATEWAY_CONFIG, useValue: cfg }, { provide: GatewayService, useFactory: (c: GatewayConfig) => new GatewayService(c), inject: [GATEWAY_CONFIG] }],
    };
  }
}
