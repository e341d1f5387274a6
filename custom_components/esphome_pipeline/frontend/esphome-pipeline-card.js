var H=globalThis,I=H.ShadowRoot&&(H.ShadyCSS===void 0||H.ShadyCSS.nativeShadow)&&"adoptedStyleSheets"in Document.prototype&&"replace"in CSSStyleSheet.prototype,B=Symbol(),le=new WeakMap,S=class{constructor(e,t,s){if(this._$cssResult$=!0,s!==B)throw Error("CSSResult is not constructable. Use `unsafeCSS` or `css` instead.");this.cssText=e,this.t=t}get styleSheet(){let e=this.o,t=this.t;if(I&&e===void 0){let s=t!==void 0&&t.length===1;s&&(e=le.get(t)),e===void 0&&((this.o=e=new CSSStyleSheet).replaceSync(this.cssText),s&&le.set(t,e))}return e}toString(){return this.cssText}},ce=r=>new S(typeof r=="string"?r:r+"",void 0,B),V=(r,...e)=>{let t=r.length===1?r[0]:e.reduce((s,i,n)=>s+(o=>{if(o._$cssResult$===!0)return o.cssText;if(typeof o=="number")return o;throw Error("Value passed to 'css' function must be a 'css' function result: "+o+". Use 'unsafeCSS' to pass non-literal values, but take care to ensure page security.")})(i)+r[n+1],r[0]);return new S(t,r,B)},de=(r,e)=>{if(I)r.adoptedStyleSheets=e.map(t=>t instanceof CSSStyleSheet?t:t.styleSheet);else for(let t of e){let s=document.createElement("style"),i=H.litNonce;i!==void 0&&s.setAttribute("nonce",i),s.textContent=t.cssText,r.appendChild(s)}},q=I?r=>r:r=>r instanceof CSSStyleSheet?(e=>{let t="";for(let s of e.cssRules)t+=s.cssText;return ce(t)})(r):r;var{is:He,defineProperty:Ie,getOwnPropertyDescriptor:Je,getOwnPropertyNames:je,getOwnPropertySymbols:De,getPrototypeOf:ze}=Object,J=globalThis,he=J.trustedTypes,Be=he?he.emptyScript:"",Ve=J.reactiveElementPolyfillSupport,C=(r,e)=>r,W={toAttribute(r,e){switch(e){case Boolean:r=r?Be:null;break;case Object:case Array:r=r==null?r:JSON.stringify(r)}return r},fromAttribute(r,e){let t=r;switch(e){case Boolean:t=r!==null;break;case Number:t=r===null?null:Number(r);break;case Object:case Array:try{t=JSON.parse(r)}catch{t=null}}return t}},pe=(r,e)=>!He(r,e),ue={attribute:!0,type:String,converter:W,reflect:!1,useDefault:!1,hasChanged:pe};Symbol.metadata??=Symbol("metadata"),J.litPropertyMetadata??=new WeakMap;var m=class extends HTMLElement{static addInitializer(e){this._$Ei(),(this.l??=[]).push(e)}static get observedAttributes(){return this.finalize(),this._$Eh&&[...this._$Eh.keys()]}static createProperty(e,t=ue){if(t.state&&(t.attribute=!1),this._$Ei(),this.prototype.hasOwnProperty(e)&&((t=Object.create(t)).wrapped=!0),this.elementProperties.set(e,t),!t.noAccessor){let s=Symbol(),i=this.getPropertyDescriptor(e,s,t);i!==void 0&&Ie(this.prototype,e,i)}}static getPropertyDescriptor(e,t,s){let{get:i,set:n}=Je(this.prototype,e)??{get(){return this[t]},set(o){this[t]=o}};return{get:i,set(o){let c=i?.call(this);n?.call(this,o),this.requestUpdate(e,c,s)},configurable:!0,enumerable:!0}}static getPropertyOptions(e){return this.elementProperties.get(e)??ue}static _$Ei(){if(this.hasOwnProperty(C("elementProperties")))return;let e=ze(this);e.finalize(),e.l!==void 0&&(this.l=[...e.l]),this.elementProperties=new Map(e.elementProperties)}static finalize(){if(this.hasOwnProperty(C("finalized")))return;if(this.finalized=!0,this._$Ei(),this.hasOwnProperty(C("properties"))){let t=this.properties,s=[...je(t),...De(t)];for(let i of s)this.createProperty(i,t[i])}let e=this[Symbol.metadata];if(e!==null){let t=litPropertyMetadata.get(e);if(t!==void 0)for(let[s,i]of t)this.elementProperties.set(s,i)}this._$Eh=new Map;for(let[t,s]of this.elementProperties){let i=this._$Eu(t,s);i!==void 0&&this._$Eh.set(i,t)}this.elementStyles=this.finalizeStyles(this.styles)}static finalizeStyles(e){let t=[];if(Array.isArray(e)){let s=new Set(e.flat(1/0).reverse());for(let i of s)t.unshift(q(i))}else e!==void 0&&t.push(q(e));return t}static _$Eu(e,t){let s=t.attribute;return s===!1?void 0:typeof s=="string"?s:typeof e=="string"?e.toLowerCase():void 0}constructor(){super(),this._$Ep=void 0,this.isUpdatePending=!1,this.hasUpdated=!1,this._$Em=null,this._$Ev()}_$Ev(){this._$ES=new Promise(e=>this.enableUpdating=e),this._$AL=new Map,this._$E_(),this.requestUpdate(),this.constructor.l?.forEach(e=>e(this))}addController(e){(this._$EO??=new Set).add(e),this.renderRoot!==void 0&&this.isConnected&&e.hostConnected?.()}removeController(e){this._$EO?.delete(e)}_$E_(){let e=new Map,t=this.constructor.elementProperties;for(let s of t.keys())this.hasOwnProperty(s)&&(e.set(s,this[s]),delete this[s]);e.size>0&&(this._$Ep=e)}createRenderRoot(){let e=this.shadowRoot??this.attachShadow(this.constructor.shadowRootOptions);return de(e,this.constructor.elementStyles),e}connectedCallback(){this.renderRoot??=this.createRenderRoot(),this.enableUpdating(!0),this._$EO?.forEach(e=>e.hostConnected?.())}enableUpdating(e){}disconnectedCallback(){this._$EO?.forEach(e=>e.hostDisconnected?.())}attributeChangedCallback(e,t,s){this._$AK(e,s)}_$ET(e,t){let s=this.constructor.elementProperties.get(e),i=this.constructor._$Eu(e,s);if(i!==void 0&&s.reflect===!0){let n=(s.converter?.toAttribute!==void 0?s.converter:W).toAttribute(t,s.type);this._$Em=e,n==null?this.removeAttribute(i):this.setAttribute(i,n),this._$Em=null}}_$AK(e,t){let s=this.constructor,i=s._$Eh.get(e);if(i!==void 0&&this._$Em!==i){let n=s.getPropertyOptions(i),o=typeof n.converter=="function"?{fromAttribute:n.converter}:n.converter?.fromAttribute!==void 0?n.converter:W;this._$Em=i;let c=o.fromAttribute(t,n.type);this[i]=c??this._$Ej?.get(i)??c,this._$Em=null}}requestUpdate(e,t,s,i=!1,n){if(e!==void 0){let o=this.constructor;if(i===!1&&(n=this[e]),s??=o.getPropertyOptions(e),!((s.hasChanged??pe)(n,t)||s.useDefault&&s.reflect&&n===this._$Ej?.get(e)&&!this.hasAttribute(o._$Eu(e,s))))return;this.C(e,t,s)}this.isUpdatePending===!1&&(this._$ES=this._$EP())}C(e,t,{useDefault:s,reflect:i,wrapped:n},o){s&&!(this._$Ej??=new Map).has(e)&&(this._$Ej.set(e,o??t??this[e]),n!==!0||o!==void 0)||(this._$AL.has(e)||(this.hasUpdated||s||(t=void 0),this._$AL.set(e,t)),i===!0&&this._$Em!==e&&(this._$Eq??=new Set).add(e))}async _$EP(){this.isUpdatePending=!0;try{await this._$ES}catch(t){Promise.reject(t)}let e=this.scheduleUpdate();return e!=null&&await e,!this.isUpdatePending}scheduleUpdate(){return this.performUpdate()}performUpdate(){if(!this.isUpdatePending)return;if(!this.hasUpdated){if(this.renderRoot??=this.createRenderRoot(),this._$Ep){for(let[i,n]of this._$Ep)this[i]=n;this._$Ep=void 0}let s=this.constructor.elementProperties;if(s.size>0)for(let[i,n]of s){let{wrapped:o}=n,c=this[i];o!==!0||this._$AL.has(i)||c===void 0||this.C(i,void 0,n,c)}}let e=!1,t=this._$AL;try{e=this.shouldUpdate(t),e?(this.willUpdate(t),this._$EO?.forEach(s=>s.hostUpdate?.()),this.update(t)):this._$EM()}catch(s){throw e=!1,this._$EM(),s}e&&this._$AE(t)}willUpdate(e){}_$AE(e){this._$EO?.forEach(t=>t.hostUpdated?.()),this.hasUpdated||(this.hasUpdated=!0,this.firstUpdated(e)),this.updated(e)}_$EM(){this._$AL=new Map,this.isUpdatePending=!1}get updateComplete(){return this.getUpdateComplete()}getUpdateComplete(){return this._$ES}shouldUpdate(e){return!0}update(e){this._$Eq&&=this._$Eq.forEach(t=>this._$ET(t,this[t])),this._$EM()}updated(e){}firstUpdated(e){}};m.elementStyles=[],m.shadowRootOptions={mode:"open"},m[C("elementProperties")]=new Map,m[C("finalized")]=new Map,Ve?.({ReactiveElement:m}),(J.reactiveElementVersions??=[]).push("2.1.2");var Q=globalThis,_e=r=>r,j=Q.trustedTypes,fe=j?j.createPolicy("lit-html",{createHTML:r=>r}):void 0,ye="$lit$",b=`lit$${Math.random().toFixed(9).slice(2)}$`,we="?"+b,qe=`<${we}>`,y=document,R=()=>y.createComment(""),P=r=>r===null||typeof r!="object"&&typeof r!="function",ee=Array.isArray,We=r=>ee(r)||typeof r?.[Symbol.iterator]=="function",F=`[ 	
\f\r]`,k=/<(?:(!--|\/[^a-zA-Z])|(\/?[a-zA-Z][^>\s]*)|(\/?$))/g,me=/-->/g,ge=/>/g,v=RegExp(`>|${F}(?:([^\\s"'>=/]+)(${F}*=${F}*(?:[^ 	
\f\r"'\`<>=]|("|')|))|$)`,"g"),be=/'/g,ve=/"/g,Ae=/^(?:script|style|textarea|title)$/i,te=r=>(e,...t)=>({_$litType$:r,strings:e,values:t}),h=te(1),at=te(2),lt=te(3),w=Symbol.for("lit-noChange"),l=Symbol.for("lit-nothing"),$e=new WeakMap,$=y.createTreeWalker(y,129);function xe(r,e){if(!ee(r)||!r.hasOwnProperty("raw"))throw Error("invalid template strings array");return fe!==void 0?fe.createHTML(e):e}var Fe=(r,e)=>{let t=r.length-1,s=[],i,n=e===2?"<svg>":e===3?"<math>":"",o=k;for(let c=0;c<t;c++){let a=r[c],u,p,d=-1,f=0;for(;f<a.length&&(o.lastIndex=f,p=o.exec(a),p!==null);)f=o.lastIndex,o===k?p[1]==="!--"?o=me:p[1]!==void 0?o=ge:p[2]!==void 0?(Ae.test(p[2])&&(i=RegExp("</"+p[2],"g")),o=v):p[3]!==void 0&&(o=v):o===v?p[0]===">"?(o=i??k,d=-1):p[1]===void 0?d=-2:(d=o.lastIndex-p[2].length,u=p[1],o=p[3]===void 0?v:p[3]==='"'?ve:be):o===ve||o===be?o=v:o===me||o===ge?o=k:(o=v,i=void 0);let g=o===v&&r[c+1].startsWith("/>")?" ":"";n+=o===k?a+qe:d>=0?(s.push(u),a.slice(0,d)+ye+a.slice(d)+b+g):a+b+(d===-2?c:g)}return[xe(r,n+(r[t]||"<?>")+(e===2?"</svg>":e===3?"</math>":"")),s]},T=class r{constructor({strings:e,_$litType$:t},s){let i;this.parts=[];let n=0,o=0,c=e.length-1,a=this.parts,[u,p]=Fe(e,t);if(this.el=r.createElement(u,s),$.currentNode=this.el.content,t===2||t===3){let d=this.el.content.firstChild;d.replaceWith(...d.childNodes)}for(;(i=$.nextNode())!==null&&a.length<c;){if(i.nodeType===1){if(i.hasAttributes())for(let d of i.getAttributeNames())if(d.endsWith(ye)){let f=p[o++],g=i.getAttribute(d).split(b),O=/([.?@])?(.*)/.exec(f);a.push({type:1,index:n,name:O[2],strings:g,ctor:O[1]==="."?G:O[1]==="?"?Y:O[1]==="@"?X:x}),i.removeAttribute(d)}else d.startsWith(b)&&(a.push({type:6,index:n}),i.removeAttribute(d));if(Ae.test(i.tagName)){let d=i.textContent.split(b),f=d.length-1;if(f>0){i.textContent=j?j.emptyScript:"";for(let g=0;g<f;g++)i.append(d[g],R()),$.nextNode(),a.push({type:2,index:++n});i.append(d[f],R())}}}else if(i.nodeType===8)if(i.data===we)a.push({type:2,index:n});else{let d=-1;for(;(d=i.data.indexOf(b,d+1))!==-1;)a.push({type:7,index:n}),d+=b.length-1}n++}}static createElement(e,t){let s=y.createElement("template");return s.innerHTML=e,s}};function A(r,e,t=r,s){if(e===w)return e;let i=s!==void 0?t._$Co?.[s]:t._$Cl,n=P(e)?void 0:e._$litDirective$;return i?.constructor!==n&&(i?._$AO?.(!1),n===void 0?i=void 0:(i=new n(r),i._$AT(r,t,s)),s!==void 0?(t._$Co??=[])[s]=i:t._$Cl=i),i!==void 0&&(e=A(r,i._$AS(r,e.values),i,s)),e}var K=class{constructor(e,t){this._$AV=[],this._$AN=void 0,this._$AD=e,this._$AM=t}get parentNode(){return this._$AM.parentNode}get _$AU(){return this._$AM._$AU}u(e){let{el:{content:t},parts:s}=this._$AD,i=(e?.creationScope??y).importNode(t,!0);$.currentNode=i;let n=$.nextNode(),o=0,c=0,a=s[0];for(;a!==void 0;){if(o===a.index){let u;a.type===2?u=new M(n,n.nextSibling,this,e):a.type===1?u=new a.ctor(n,a.name,a.strings,this,e):a.type===6&&(u=new Z(n,this,e)),this._$AV.push(u),a=s[++c]}o!==a?.index&&(n=$.nextNode(),o++)}return $.currentNode=y,i}p(e){let t=0;for(let s of this._$AV)s!==void 0&&(s.strings!==void 0?(s._$AI(e,s,t),t+=s.strings.length-2):s._$AI(e[t])),t++}},M=class r{get _$AU(){return this._$AM?._$AU??this._$Cv}constructor(e,t,s,i){this.type=2,this._$AH=l,this._$AN=void 0,this._$AA=e,this._$AB=t,this._$AM=s,this.options=i,this._$Cv=i?.isConnected??!0}get parentNode(){let e=this._$AA.parentNode,t=this._$AM;return t!==void 0&&e?.nodeType===11&&(e=t.parentNode),e}get startNode(){return this._$AA}get endNode(){return this._$AB}_$AI(e,t=this){e=A(this,e,t),P(e)?e===l||e==null||e===""?(this._$AH!==l&&this._$AR(),this._$AH=l):e!==this._$AH&&e!==w&&this._(e):e._$litType$!==void 0?this.$(e):e.nodeType!==void 0?this.T(e):We(e)?this.k(e):this._(e)}O(e){return this._$AA.parentNode.insertBefore(e,this._$AB)}T(e){this._$AH!==e&&(this._$AR(),this._$AH=this.O(e))}_(e){this._$AH!==l&&P(this._$AH)?this._$AA.nextSibling.data=e:this.T(y.createTextNode(e)),this._$AH=e}$(e){let{values:t,_$litType$:s}=e,i=typeof s=="number"?this._$AC(e):(s.el===void 0&&(s.el=T.createElement(xe(s.h,s.h[0]),this.options)),s);if(this._$AH?._$AD===i)this._$AH.p(t);else{let n=new K(i,this),o=n.u(this.options);n.p(t),this.T(o),this._$AH=n}}_$AC(e){let t=$e.get(e.strings);return t===void 0&&$e.set(e.strings,t=new T(e)),t}k(e){ee(this._$AH)||(this._$AH=[],this._$AR());let t=this._$AH,s,i=0;for(let n of e)i===t.length?t.push(s=new r(this.O(R()),this.O(R()),this,this.options)):s=t[i],s._$AI(n),i++;i<t.length&&(this._$AR(s&&s._$AB.nextSibling,i),t.length=i)}_$AR(e=this._$AA.nextSibling,t){for(this._$AP?.(!1,!0,t);e!==this._$AB;){let s=_e(e).nextSibling;_e(e).remove(),e=s}}setConnected(e){this._$AM===void 0&&(this._$Cv=e,this._$AP?.(e))}},x=class{get tagName(){return this.element.tagName}get _$AU(){return this._$AM._$AU}constructor(e,t,s,i,n){this.type=1,this._$AH=l,this._$AN=void 0,this.element=e,this.name=t,this._$AM=i,this.options=n,s.length>2||s[0]!==""||s[1]!==""?(this._$AH=Array(s.length-1).fill(new String),this.strings=s):this._$AH=l}_$AI(e,t=this,s,i){let n=this.strings,o=!1;if(n===void 0)e=A(this,e,t,0),o=!P(e)||e!==this._$AH&&e!==w,o&&(this._$AH=e);else{let c=e,a,u;for(e=n[0],a=0;a<n.length-1;a++)u=A(this,c[s+a],t,a),u===w&&(u=this._$AH[a]),o||=!P(u)||u!==this._$AH[a],u===l?e=l:e!==l&&(e+=(u??"")+n[a+1]),this._$AH[a]=u}o&&!i&&this.j(e)}j(e){e===l?this.element.removeAttribute(this.name):this.element.setAttribute(this.name,e??"")}},G=class extends x{constructor(){super(...arguments),this.type=3}j(e){this.element[this.name]=e===l?void 0:e}},Y=class extends x{constructor(){super(...arguments),this.type=4}j(e){this.element.toggleAttribute(this.name,!!e&&e!==l)}},X=class extends x{constructor(e,t,s,i,n){super(e,t,s,i,n),this.type=5}_$AI(e,t=this){if((e=A(this,e,t,0)??l)===w)return;let s=this._$AH,i=e===l&&s!==l||e.capture!==s.capture||e.once!==s.once||e.passive!==s.passive,n=e!==l&&(s===l||i);i&&this.element.removeEventListener(this.name,this,s),n&&this.element.addEventListener(this.name,this,e),this._$AH=e}handleEvent(e){typeof this._$AH=="function"?this._$AH.call(this.options?.host??this.element,e):this._$AH.handleEvent(e)}},Z=class{constructor(e,t,s){this.element=e,this.type=6,this._$AN=void 0,this._$AM=t,this.options=s}get _$AU(){return this._$AM._$AU}_$AI(e){A(this,e)}};var Ke=Q.litHtmlPolyfillSupport;Ke?.(T,M),(Q.litHtmlVersions??=[]).push("3.3.3");var Ee=(r,e,t)=>{let s=t?.renderBefore??e,i=s._$litPart$;if(i===void 0){let n=t?.renderBefore??null;s._$litPart$=i=new M(e.insertBefore(R(),n),n,void 0,t??{})}return i._$AI(r),i};var se=globalThis,_=class extends m{constructor(){super(...arguments),this.renderOptions={host:this},this._$Do=void 0}createRenderRoot(){let e=super.createRenderRoot();return this.renderOptions.renderBefore??=e.firstChild,e}update(e){let t=this.render();this.hasUpdated||(this.renderOptions.isConnected=this.isConnected),super.update(e),this._$Do=Ee(t,this.renderRoot,this.renderOptions)}connectedCallback(){super.connectedCallback(),this._$Do?.setConnected(!0)}disconnectedCallback(){super.disconnectedCallback(),this._$Do?.setConnected(!1)}render(){return w}};_._$litElement$=!0,_.finalized=!0,se.litElementHydrateSupport?.({LitElement:_});var Ge=se.litElementPolyfillSupport;Ge?.({LitElement:_});(se.litElementVersions??=[]).push("4.2.2");var Ye="esphome_pipeline";function Se(r){if(!r||typeof r!="object")throw new Error("Invalid configuration");if(r.history!==void 0&&(typeof r.history!="number"||r.history<0))throw new Error("history must be a number of 0 or more")}var Xe={title:"Title",entry_id:"ESPHome Pipeline entry (only needed with several)",history:"Recent results shown",show_log:"Show the log of the selected job"},Ce={schema:[{name:"title",selector:{text:{}}},{name:"entry_id",selector:{config_entry:{integration:Ye}}},{name:"history",selector:{number:{min:0,max:50,mode:"box"}}},{name:"show_log",selector:{boolean:{}}}],computeLabel:r=>Xe[r.name]??r.name};function ke(r){window.customCards=window.customCards??[],window.customCards.some(e=>e.type===r)||window.customCards.push({type:r,name:"ESPHome Pipeline",description:"The fleet's firmware at a glance: lanes, queue, results, updates and live logs.",preview:!1,documentationURL:"https://github.com/esphome-pipeline/esphome-pipeline/blob/main/docs/dashboard.md"})}var Re=new Set(["completed","failed","cancelled"]),L=r=>!Re.has(r.status);function ie(r){return[...r].sort((e,t)=>e.created_at<t.created_at?-1:e.created_at>t.created_at?1:0)}function Pe(r){return{running:r.filter(e=>e.status==="running"&&e.lane==="compile"),waiting:r.filter(e=>e.status==="queued"&&e.lane!=="upload")}}function Te(r,e){return r.filter(t=>t.status==="running"&&t.lane==="remote"&&t.peer===e)}function Me(r){return{running:r.filter(e=>e.status==="running"&&e.lane==="upload"),waiting:r.filter(e=>e.status==="queued"&&e.lane==="upload")}}function Le(r,e,t,s){let i=[...e.values()].filter(n=>n.status==="running");if(r.job_type==="reset_build_env")return i.length?"waits for the running jobs to stop":"starts next";if(i.some(n=>n.job_type==="reset_build_env"))return"waits for the build environment reset";if(r.held){let n=r.depends_on?e.get(r.depends_on):void 0;return n&&L(n)?n.status==="running"?"waits for its compile (running)":"waits for its compile (queued)":"held: a clean or reset runs first"}return i.some(n=>n.configuration===r.configuration&&r.configuration)?"waits for another job of this configuration":t.running.length>=s?r.lane==="upload"?"waits for a free upload slot":"waits for a free compile worker":"starts next"}function re(r,e,t=Date.now()){if(!r)return null;let s=Date.parse(r),i=e?Date.parse(e):t;return Number.isNaN(s)||Number.isNaN(i)?null:Math.max(0,(i-s)/1e3)}function ne(r){if(r===null)return"";if(r<10)return`${r.toFixed(1)} s`;if(r<60)return`${Math.round(r)} s`;let e=Math.floor(r/60),t=Math.round(r%60);return t?`${e} min ${t} s`:`${e} min`}var Ze=/\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g;function oe(r){return r.replace(Ze,"").replace(/\r/g,"")}function E(r){switch(r.job_type){case"reset_build_env":return"Reset build environment";case"clean":return"Clean";case"upload":return"Upload";default:return"Compile"}}function Ue(r,e){return r.filter(t=>Re.has(t.status)).sort((t,s)=>(t.finished_at??"")<(s.finished_at??"")?1:-1).slice(0,e)}var D=V`
  :host {
    display: block;
  }
  ha-card {
    padding: 12px 16px 16px;
    color: var(--primary-text-color);
    overflow: hidden;
  }
  header {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    justify-content: space-between;
    gap: 8px;
    margin-bottom: 4px;
  }
  h1 {
    font-size: 1.25em;
    font-weight: 500;
    margin: 0;
  }
  h2 {
    display: flex;
    align-items: baseline;
    justify-content: space-between;
    gap: 8px;
    font-size: 0.95em;
    font-weight: 500;
    margin: 16px 0 6px;
    color: var(--secondary-text-color);
    text-transform: uppercase;
    letter-spacing: 0.04em;
  }
  h2 .meta {
    text-transform: none;
    letter-spacing: normal;
    font-weight: 400;
  }
  section {
    border-top: 1px solid var(--divider-color);
  }
  .row {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 4px 8px;
    padding: 6px 4px;
    border-radius: 6px;
    cursor: pointer;
  }
  .row:hover,
  .row.selected {
    background: var(--secondary-background-color);
  }
  .what {
    flex: 1 1 160px;
    min-width: 0;
  }
  .name {
    font-weight: 500;
    overflow-wrap: anywhere;
  }
  .detail {
    font-size: 0.85em;
    color: var(--secondary-text-color);
    overflow-wrap: anywhere;
  }
  .detail.error {
    color: var(--error-color);
  }
  .empty {
    padding: 4px;
    color: var(--secondary-text-color);
    font-size: 0.9em;
  }
  .bar {
    flex: 1 1 100%;
    height: 6px;
    border-radius: 3px;
    background: var(--divider-color);
    overflow: hidden;
  }
  .bar > div {
    height: 100%;
    background: var(--primary-color);
    transition: width 0.3s ease;
  }
  .bar.unknown > div {
    width: 30%;
    opacity: 0.6;
  }
  .status {
    font-size: 0.8em;
    font-weight: 500;
    padding: 2px 8px;
    border-radius: 10px;
    color: var(--text-primary-color, #fff);
    background: var(--secondary-text-color);
    white-space: nowrap;
  }
  .status.completed {
    background: var(--success-color, #43a047);
  }
  .status.failed {
    background: var(--error-color, #db4437);
  }
  .status.cancelled {
    background: var(--warning-color, #ffa600);
  }
  .status.running {
    background: var(--primary-color);
  }
  .duration {
    font-size: 0.85em;
    color: var(--secondary-text-color);
    white-space: nowrap;
  }
  button {
    font: inherit;
    font-size: 0.85em;
    font-weight: 500;
    padding: 4px 12px;
    min-height: 32px;
    border-radius: 16px;
    border: 1px solid var(--primary-color);
    background: transparent;
    color: var(--primary-color);
    cursor: pointer;
    white-space: nowrap;
  }
  button.primary {
    background: var(--primary-color);
    color: var(--text-primary-color, #fff);
  }
  button.danger {
    border-color: var(--error-color);
    color: var(--error-color);
  }
  button:disabled {
    opacity: 0.5;
    cursor: default;
  }
  .log {
    margin-top: 6px;
  }
  .log-head {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 8px;
    justify-content: space-between;
  }
  pre {
    margin: 6px 0 0;
    padding: 8px;
    max-height: 320px;
    overflow: auto;
    font-family: var(--code-font-family, monospace);
    font-size: 12px;
    line-height: 1.4;
    white-space: pre-wrap;
    overflow-wrap: anywhere;
    border-radius: 6px;
    background: var(--code-editor-background-color, var(--secondary-background-color));
    color: var(--primary-text-color);
  }
  .notice {
    padding: 8px;
    margin: 8px 0 0;
    border-radius: 6px;
    background: var(--secondary-background-color);
    color: var(--error-color);
    font-size: 0.9em;
  }
`;var Ne="esphome-pipeline-log",Qe=2e3,et=24,U=class extends _{constructor(){super(...arguments);this.name="";this._follow=!0;this._resize=new ResizeObserver(()=>this._scrollToEnd())}connectedCallback(){super.connectedCallback(),this._resubscribe(),this.requestUpdate()}disconnectedCallback(){super.disconnectedCallback(),this._resize.disconnect(),this._observed=void 0,this._release()}updated(t){(t.has("hass")||t.has("jobId"))&&this._resubscribe();let s=this.renderRoot.querySelector("pre");s&&s!==this._observed&&(this._resize.observe(s),this._observed=s),t.has("_log")&&this._scrollToEnd()}_scrollToEnd(){let t=this.renderRoot.querySelector("pre");t&&this._follow&&(t.scrollTop=t.scrollHeight)}_resubscribe(){let t=this.hass,s=this.jobId;if(!t||!s||!this.isConnected||this._subscribed?.jobId===s&&this._subscribed.connection===t.connection)return;this._release(),this._log=void 0,this._error=void 0,this._follow=!0,this._subscribed={jobId:s,connection:t.connection};let i={type:"esphome_pipeline/subscribe_log",job_id:s};this.entryId&&(i.entry_id=this.entryId),this._unsubscribe=t.connection.subscribeMessage(n=>this._onEvent(s,n),i).catch(n=>{this._error=n?.message??String(n)})}_release(){this._unsubscribe?.then(t=>t?.()).catch(()=>{}),this._unsubscribe=void 0,this._subscribed=void 0}_onEvent(t,s){if(t!==this.jobId)return;let i=this._log;switch(s.event){case"log":this._log={job:s.job,lines:s.lines.map(oe),elided:s.elided};break;case"lines":{if(!i)return;let n=[...i.lines];s.dropped&&n.push(`… ${s.dropped} lines not shown (the browser fell behind) …`),n.push(...s.lines.map(oe));let o=Math.max(0,n.length-Qe);this._log={...i,lines:n.slice(o),elided:i.elided+o};break}case"job":case"result":i&&(this._log={...i,job:s.job});break;case"ended":this._release();break}}async _copy(){let t=this._log?.lines.join(`
`)??"";try{await navigator.clipboard.writeText(t)}catch{let s=document.createElement("textarea");s.value=t,document.body.appendChild(s),s.select(),document.execCommand("copy"),s.remove()}}_onScroll(t){let s=t.target;this._follow=s.scrollHeight-s.scrollTop-s.clientHeight<et}render(){let t=this._log,s=t?.job,i=this._error??(t?t.lines.join(`
`):"Loading…");return h`<section class="log">
      <h2>Log</h2>
      <div class="log-head">
        <div class="what">
          <div class="name">${s?`${this.name} · ${E(s)}`:this.name}</div>
          <div class="detail">
            ${s?s.status:""}${t?.elided?` · ${t.elided} earlier lines not kept`:""}
          </div>
        </div>
        <button class="copy" @click=${()=>this._copy()}>Copy</button>
        <button class="close" @click=${()=>this.dispatchEvent(new CustomEvent("close"))}>Close</button>
      </div>
      <pre @scroll=${n=>this._onScroll(n)}>${i}</pre>
    </section>`}};U.styles=D,U.properties={hass:{attribute:!1},jobId:{attribute:!1},entryId:{attribute:!1},name:{attribute:!1},_log:{state:!0},_error:{state:!0}};customElements.get(Ne)||customElements.define(Ne,U);var ae="esphome-pipeline-card",z="esphome_pipeline",Oe=5,tt=3e3,st=200,N=class extends _{constructor(){super(...arguments);this._jobs=new Map;this._configurations=[];this._busy=!1}static getStubConfig(){return{history:Oe,show_log:!0}}static getConfigForm(){return Ce}setConfig(t){Se(t);let s=this._config!==void 0&&this._config.entry_id!==t.entry_id;this._config=t,s&&(this._unsubscribeAll(),this._subscribe())}getCardSize(){let t=[...this._jobs.values()].filter(L).length,s=this._configurations.filter(i=>i.update_available).length;return 4+t+s+Math.ceil(this._history/2)+(this._selected?6:0)}getGridOptions(){return{columns:12,min_columns:6,min_rows:4}}connectedCallback(){super.connectedCallback(),this._subscribe(),this._clock=window.setInterval(()=>{[...this._jobs.values()].some(t=>t.status==="running")&&this.requestUpdate()},1e3)}disconnectedCallback(){super.disconnectedCallback(),window.clearInterval(this._clock),this._unsubscribeAll()}updated(t){t.has("hass")&&this.hass&&this.hass.connection!==this._subscribedWith&&(this._unsubscribeAll(),this._subscribe())}_subscribe(){if(!this.hass||!this.isConnected||this._unsubscribeJobs)return;let t=this.hass.connection;this._subscribedWith=t;let s={type:`${z}/subscribe_jobs`};this._config?.entry_id&&(s.entry_id=this._config.entry_id),this._unsubscribeJobs=t.subscribeMessage(i=>this._onJobsEvent(i),s).then(i=>(this._error=void 0,i),i=>{this._error=i?.message??String(i),this._unsubscribeJobs=void 0,this._scheduleResubscribe()})}_scheduleResubscribe(){window.clearTimeout(this._retry),this._retry=window.setTimeout(()=>this._subscribe(),tt)}_unsubscribeAll(){window.clearTimeout(this._retry),this._release(this._unsubscribeJobs),this._unsubscribeJobs=void 0,this._subscribedWith=void 0}_release(t){t?.then(s=>s?.()).catch(()=>{})}_onJobsEvent(t){switch(t.event){case"snapshot":this._snapshot=t,this._jobs=new Map(t.jobs.map(s=>[s.job_id,s])),this._configurations=t.configurations;break;case"jobs":{let s=new Map(this._jobs);for(let i of t.jobs)s.set(i.job_id,i);this._jobs=this._trim(s);break}case"configurations":this._configurations=t.configurations;break;case"ended":this._unsubscribeAll(),this._scheduleResubscribe();break}}_trim(t){let s=ie([...t.values()].filter(i=>!L(i)));for(let i of s.slice(0,Math.max(0,s.length-st)))t.delete(i.job_id);return t}_select(t){this._config?.show_log!==!1&&(this._selected=this._selected===t?void 0:t)}async _command(t){if(this.hass){this._config?.entry_id&&(t.entry_id=this._config.entry_id),this._busy=!0;try{let s=await this.hass.connection.sendMessagePromise(t);return this._error=void 0,s}catch(s){this._error=s?.message??String(s);return}finally{this._busy=!1}}}_install(t){return this._command({type:`${z}/install`,configuration:[t]})}async _installOutdated(){let t=await this._command({type:`${z}/install_outdated`});t&&this.dispatchEvent(new CustomEvent("esphome-pipeline-installed",{detail:t}))}_cancel(t,s){t.stopPropagation(),this._command({type:`${z}/cancel`,job_id:s})}get _history(){return this._config?.history??Oe}get _isAdmin(){return this.hass?.user?.is_admin??!1}render(){let t=this._config?.title||this._snapshot?.title||"ESPHome Pipeline";if(!this._snapshot)return h`<ha-card>
        <header><h1>${t}</h1></header>
        ${this._error?h`<div class="notice">${this._error}</div>`:h`<div class="empty">Loading…</div>`}
      </ha-card>`;let s=ie(this._jobs.values()),i=this._jobs,n=Pe(s),o=Me(s),c=this._snapshot.lanes;return h`<ha-card>
      <header>
        <h1>${t}</h1>
        ${this._snapshot.running?l:h`<span class="status failed">lanes stopped</span>`}
      </header>
      ${this._error?h`<div class="notice">${this._error}</div>`:l}
      ${this._renderLane("Compile","compile",n,c.compile.workers,i,`${c.compile.workers} worker${c.compile.workers===1?"":"s"}`)}
      ${this._snapshot.peers.map(a=>this._renderLane(`Build peer ${a.label}`,`peer-${a.label}`,{running:Te(s,a.label),waiting:[]},1,i,"1 slot"))}
      ${this._renderLane("Upload","upload",o,c.upload.slots,i,`${c.upload.slots} slot${c.upload.slots===1?"":"s"}`)}
      ${this._renderUpdates()} ${this._renderResults(s)} ${this._renderLog()}
    </ha-card>`}_renderLane(t,s,i,n,o,c){return h`<section class="lane" data-lane=${s}>
      <h2>${t} <span class="meta">${c}</span></h2>
      ${i.running.length===0&&i.waiting.length===0?h`<div class="empty">Idle</div>`:l}
      ${i.running.map(a=>this._renderRunning(a))}
      ${i.waiting.map(a=>this._renderWaiting(a,Le(a,o,i,n)))}
    </section>`}_configurationName(t){return this._configurations.find(s=>s.configuration===t)?.name??t}_jobName(t){return t.configuration?this._configurationName(t.configuration):"All configurations"}_cancelButton(t){return!this._isAdmin||!L(t)?l:h`<button class="danger cancel" ?disabled=${this._busy} @click=${s=>this._cancel(s,t.job_id)}>
      Cancel
    </button>`}_row(t,s,i){return h`<div
      class="row job ${this._selected===t.job_id?"selected":""}"
      data-job-id=${t.job_id}
      data-state=${i}
      data-configuration=${t.configuration}
      data-job-type=${t.job_type}
      @click=${()=>this._select(t.job_id)}
    >
      ${s}
    </div>`}_renderRunning(t){let s=ne(re(t.started_at,null)),i=t.progress;return this._row(t,h`<div class="what">
          <div class="name">${this._jobName(t)}</div>
          <div class="detail">${E(t)}${t.peer?` on ${t.peer}`:""} · running ${s}</div>
        </div>
        <span class="status running">${i===null?"running":`${i} %`}</span>
        ${this._cancelButton(t)}
        <div
          class="bar ${i===null?"unknown":""}"
          role="progressbar"
          aria-valuemin="0"
          aria-valuemax="100"
          aria-valuenow=${i??l}
        >
          <div style="width: ${i??30}%"></div>
        </div>`,"running")}_renderWaiting(t,s){return this._row(t,h`<div class="what">
          <div class="name">${this._jobName(t)}</div>
          <div class="detail reason">${E(t)} · ${s}</div>
        </div>
        <span class="status">${t.held?"held":"queued"}</span>
        ${this._cancelButton(t)}`,t.held?"held":"queued")}_renderUpdates(){let t=this._configurations.filter(s=>s.update_available);return h`<section class="updates">
      <h2>
        Updates available
        ${this._isAdmin&&t.length?h`<button class="primary install-all" ?disabled=${this._busy} @click=${()=>this._installOutdated()}>
              Install all outdated (${t.length})
            </button>`:l}
      </h2>
      ${t.length===0?h`<div class="empty">Every installed configuration is current</div>`:l}
      ${t.map(s=>h`<div class="row update" data-configuration=${s.configuration}>
          <div class="what">
            <div class="name">${s.name}</div>
            <div class="detail">${s.configuration} · installed ${s.installed?.slice(0,8)} → ${s.latest.slice(0,8)}</div>
          </div>
          ${this._isAdmin?h`<button class="install" ?disabled=${this._busy} @click=${()=>this._install(s.configuration)}>Install</button>`:l}
        </div>`)}
    </section>`}_renderResults(t){if(this._history===0)return l;let s=Ue(t,this._history);return h`<section class="results">
      <h2>Recent results</h2>
      ${s.length===0?h`<div class="empty">No finished jobs yet</div>`:l}
      ${s.map(i=>this._row(i,h`<div class="what">
              <div class="name">${this._jobName(i)}</div>
              <div class="detail ${i.status==="failed"?"error":""}">
                ${E(i)}${i.skipped?" · skipped (nothing to do)":""}${i.error?` · ${i.error}`:""}
              </div>
            </div>
            <span class="duration">${ne(re(i.started_at,i.finished_at))}</span>
            <span class="status ${i.status}">${i.status}</span>`,i.status))}
    </section>`}_renderLog(){if(!this._selected||this._config?.show_log===!1)return l;let t=this._jobs.get(this._selected);return h`<esphome-pipeline-log
      .hass=${this.hass}
      .jobId=${this._selected}
      .entryId=${this._config?.entry_id}
      .name=${t?this._jobName(t):this._selected}
      @close=${()=>this._select(void 0)}
    ></esphome-pipeline-log>`}};N.styles=D,N.properties={hass:{attribute:!1},_config:{state:!0},_snapshot:{state:!0},_jobs:{state:!0},_configurations:{state:!0},_selected:{state:!0},_error:{state:!0},_busy:{state:!0}};customElements.get(ae)||customElements.define(ae,N);ke(ae);export{N as EsphomePipelineCard};
/*! Bundled license information:

@lit/reactive-element/css-tag.js:
  (**
   * @license
   * Copyright 2019 Google LLC
   * SPDX-License-Identifier: BSD-3-Clause
   *)

@lit/reactive-element/reactive-element.js:
lit-html/lit-html.js:
lit-element/lit-element.js:
  (**
   * @license
   * Copyright 2017 Google LLC
   * SPDX-License-Identifier: BSD-3-Clause
   *)

lit-html/is-server.js:
  (**
   * @license
   * Copyright 2022 Google LLC
   * SPDX-License-Identifier: BSD-3-Clause
   *)
*/
